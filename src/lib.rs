//! poststelle: a municipal mailroom daemon.
//!
//! Scanned letters and e-mail come in, are read (PDF text layer or Tesseract OCR), routed to the
//! department mailbox that must act (rules plus a small local model), and filed into that
//! mailbox in the DMS. What the machine is unsure about waits for a person.
//!
//! The modules follow the data's path:
//! - [`intake`]: scanner hot folder and uploads; acknowledges input only after the commit;
//! - [`extract`]: text and word positions (PDF text layer, Tesseract OCR), sandboxed;
//! - [`classify`]: rules, model, decision with explanation;
//! - [`deliver`]: delivery targets behind one trait, outbox with retries;
//! - [`store`]: all SQL (documents, audit events, corrections, quarantine) and blobs;
//! - [`outgoing`]: acknowledgements and digests over SMTP, queued in the store;
//! - [`sample`]: the Stichprobe (a share of the straight-through documents checked by a
//!   person), the measured precision and the thresholds it raises;
//! - [`api`]: the HTTP API (axum) and the web desk;
//! - [`auth`]: identities and roles (who may see and do what);
//! - [`pipeline`]: the workers that move documents from state to state;
//! - [`capture`]: the capture record (Erfassungsprotokoll) of every document and the
//!   Sichtkontrolle of a share of the scans;
//! - [`batch`]: how a scanned stack is split into letters (separators, blank pages, starts);
//! - [`train`]: corpus loading, training, evaluation, model versions;
//! - [`shadow`]: a model version in shadow on live post, scored beside the active one;
//! - [`config`], [`domain`], [`app`], [`faults`]: settings, shared types, wiring, test hooks.

pub mod api;
pub mod app;
pub mod auth;
pub mod batch;
pub mod capture;
pub mod classify;
pub mod cli;
pub mod config;
pub mod deliver;
pub mod domain;
pub mod extract;
pub mod faults;
pub mod intake;
pub mod outgoing;
pub mod pipeline;
pub mod retention;
pub mod retry;
pub mod sample;
pub mod shadow;
pub mod store;
pub mod train;
