//! poststelle's integration tests, linked into one binary (`cargo test --test it`).
//!
//! [`harness`] holds everything the tests share: letters and scans rendered at test time, a
//! fresh installation in a temporary directory ([`harness::Install`]), the daemon in-process
//! ([`harness::spawn_app`]) or as a child process ([`harness::Install::serve`], for tests that
//! kill it), and the servers the daemon talks to (Dovecot, an SMTP server, DMS conformance
//! servers, Mayan EDMS).
//!
//! One module per area; run one with `cargo test --test it -- imap::`. Tests run in parallel
//! threads of this one process, so nothing here may change process-wide state (environment
//! variables, the current directory): settings reach a daemon through its own environment
//! ([`std::process::Command::env`]) or through the config it is built from.

mod harness;

mod audit;
mod auth;
mod capture;
mod clerks;
mod compliance;
mod daemon;
mod decode_limits;
mod desk;
mod desk_browser;
mod desk_dashboard;
mod dms_connectors;
mod dms_daemon;
mod hostile_corpora;
mod imap;
mod imap_tls;
mod intake_limits;
mod layouts;
mod ldap;
mod lock;
mod mail_e2e;
mod mail_pdf;
mod mayan;
mod models;
mod names;
mod ocr_quality;
mod outgoing;
mod quarantine_retry;
mod reassignment;
mod retention;
mod route_cli;
mod router_regression;
mod rules;
mod sample;
mod sandbox;
mod searchable_einvoice;
mod secrets;
mod sender_memory;
mod shadow;
mod stack;
