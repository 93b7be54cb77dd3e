//! Configuration: the loader, and the aggregate of every component's section.
//!
//! **Which way imports go.** The loader ([`loader`], [`problem`], [`secret`], [`check`]) reads
//! the file, applies `POSTSTELLE__SECTION__KEY` overrides, finds lines, suggests spellings,
//! holds [`Secret`] and the one secret rule, and imports no component. Each component owns its
//! section beside its code (`intake::settings`, `extract::settings`, `classify::settings`,
//! `deliver::settings` with one folder per connector, `outgoing::settings`, `api::settings`,
//! `store::settings`): a raw serde struct with its defaults and a
//! `validate(raw, &mut Problems) -> TypedSettings`, importing only the loader's modules
//! (`config::{loader, problem, secret, check}`). The aggregate
//! [`Settings`] (`config/settings.rs`, with the town's own sections in `config/mailboxes.rs`)
//! imports the sections and is used by the wiring only (application, pipeline, API, command
//! line); a component receives its own section's type, never [`Settings`].
//!
//! Secrets are never accepted from the file itself; the environment wins over `<key>_file`
//! (see [`secret`]). Delivery targets are validated by their connectors through
//! [`crate::deliver::registry`].

pub mod check;
pub mod loader;
mod mailboxes;
pub mod problem;
pub mod secret;
mod settings;

pub use loader::ENV_PREFIX;
pub use mailboxes::MailboxSettings;
pub use problem::{ConfigError, ConfigProblem, Problems, line_of, suggest};
pub use secret::{Secret, SecretSource};
pub use settings::Settings;

// The sections' types under their old names, for the wiring and the tests; components import
// them from their own modules.
pub use crate::api::settings::ApiSettings;
pub use crate::classify::settings::{ClassifySettings, EinvoiceSettings};
pub use crate::deliver::{DeliverSettings, TargetSettings};
pub use crate::extract::settings::ExtractSettings;
pub use crate::intake::settings::{
    HotFolderSettings, ImapAccount, ImapSettings, ImapTls, MailDelivery,
};
pub use crate::outgoing::settings::{
    AcknowledgementSettings, DigestSettings, OutgoingSettings, SmtpSettings, SmtpTls,
};
pub use crate::store::settings::StoreSettings;
