//! The registry of connector kinds: how a `[deliver.targets.NAME]` block with `kind = "..."`
//! becomes validated settings and then a running [`Delivery`].
//!
//! Each connector lives in its own folder (`deliver/<kind>/`) with its raw config struct, its
//! validation and its fallible `build()`, tied together by one implementation of
//! [`ConnectorSettings`] on its settings type. The list of connectors is one line per kind in
//! [`super::CONNECTORS`] (written with the `connectors!` macro); the configuration dispatches through
//! [`parse_target`] and never names a connector type.

use super::{BuildError, Delivery};
use crate::config::loader;
use crate::config::problem::{Problems, suggest};
use crate::config::secret::{Secret, SecretSource};
use crate::domain::MailboxId;
use serde::de::DeserializeOwned;
use std::any::Any;
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Declares the connector modules and the registry, one line per connector:
/// `module => SettingsType`, where `module` is the folder `deliver/<module>/` and
/// `SettingsType` (in that module) implements [`ConnectorSettings`].
macro_rules! connectors {
    ($($module:ident => $settings:ident),+ $(,)?) => {
        $(pub mod $module;)+

        /// Every connector kind, in the order they are listed.
        pub static CONNECTORS: &[registry::Registration] =
            &[$(registry::Registration::of::<$module::$settings>()),+];
    };
}
pub(crate) use connectors;

/// A mailbox filed into a target, as a connector sees it when it completes its settings.
#[derive(Debug, Clone, Copy)]
pub struct TargetMailbox<'a> {
    /// The mailbox's id.
    pub id: &'a MailboxId,
    /// The mailbox's name.
    pub name: &'a str,
}

/// The validated settings of one connector kind; implemented once per connector, on the type
/// its folder's `settings.rs` defines.
pub trait ConnectorSettings: Clone + fmt::Debug + Send + Sync + 'static {
    /// The `kind = "..."` of its target blocks.
    const KIND: &'static str;
    /// The raw block as it stands in the file (without `kind`), usually
    /// `#[serde(deny_unknown_fields)]`.
    type Raw: DeserializeOwned;
    /// Validates a raw block; problems go to `check`, with the block's lines.
    fn validate(raw: Self::Raw, check: &mut TargetCheck<'_>) -> Self;
    /// Completes the settings with the mailboxes filed into this target (after every section
    /// was validated). Most connectors need nothing.
    fn complete(&mut self, _mailboxes: &[TargetMailbox<'_>]) {}
    /// Builds the running target named `name`. Fails when a part cannot be built (e.g. its
    /// HTTP client): there are no silent fallbacks.
    fn build(&self, name: &str) -> Result<Arc<dyn Delivery>, BuildError>;
}

/// The object-safe face of [`ConnectorSettings`], behind [`TargetSettings`].
trait DynTarget: fmt::Debug + Send + Sync + Any {
    fn kind(&self) -> &'static str;
    fn complete(&mut self, mailboxes: &[TargetMailbox<'_>]);
    fn build(&self, name: &str) -> Result<Arc<dyn Delivery>, BuildError>;
    fn clone_box(&self) -> Box<dyn DynTarget>;
}

impl<T: ConnectorSettings> DynTarget for T {
    fn kind(&self) -> &'static str {
        T::KIND
    }
    fn complete(&mut self, mailboxes: &[TargetMailbox<'_>]) {
        ConnectorSettings::complete(self, mailboxes);
    }
    fn build(&self, name: &str) -> Result<Arc<dyn Delivery>, BuildError> {
        ConnectorSettings::build(self, name)
    }
    fn clone_box(&self) -> Box<dyn DynTarget> {
        Box::new(self.clone())
    }
}

/// The validated settings of one delivery target, of whichever kind.
pub struct TargetSettings(Box<dyn DynTarget>);

impl TargetSettings {
    /// Wraps one connector's settings.
    pub fn new<T: ConnectorSettings>(settings: T) -> Self {
        Self(Box::new(settings))
    }

    /// The connector kind (`kind = "..."`).
    pub fn kind(&self) -> &'static str {
        self.0.kind()
    }

    /// The connector's own settings, when the target is of that kind.
    pub fn get<T: ConnectorSettings>(&self) -> Option<&T> {
        let any: &dyn Any = &*self.0;
        any.downcast_ref::<T>()
    }

    /// See [`ConnectorSettings::complete`].
    pub fn complete(&mut self, mailboxes: &[TargetMailbox<'_>]) {
        self.0.complete(mailboxes);
    }

    /// Builds the running target named `name`.
    pub fn build(&self, name: &str) -> Result<Arc<dyn Delivery>, BuildError> {
        self.0.build(name)
    }
}

impl Clone for TargetSettings {
    fn clone(&self) -> Self {
        Self(self.0.clone_box())
    }
}

impl fmt::Debug for TargetSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

type ParseFn = fn(&str, toml::Value, &mut Problems) -> Option<TargetSettings>;

/// One registered connector kind.
#[derive(Clone, Copy)]
pub struct Registration {
    /// Its `kind = "..."`.
    pub kind: &'static str,
    parse: ParseFn,
}

impl fmt::Debug for Registration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registration")
            .field("kind", &self.kind)
            .finish()
    }
}

impl Registration {
    /// The registration of the connector whose settings are `T`.
    pub const fn of<T: ConnectorSettings>() -> Self {
        Self {
            kind: T::KIND,
            parse: parse_as::<T>,
        }
    }
}

fn parse_as<T: ConnectorSettings>(
    name: &str,
    block: toml::Value,
    problems: &mut Problems,
) -> Option<TargetSettings> {
    let raw: T::Raw = loader::deserialize(block, &["deliver", "targets", name], problems)?;
    let mut check = TargetCheck { name, problems };
    Some(TargetSettings::new(T::validate(raw, &mut check)))
}

/// The kinds of every registered connector.
pub fn kinds() -> Vec<&'static str> {
    super::CONNECTORS.iter().map(|r| r.kind).collect()
}

/// Validates the block of the target `name`, dispatching on its `kind`. `None` (with the
/// problems pushed) when the block is not valid.
pub fn parse_target(
    name: &str,
    block: toml::Value,
    problems: &mut Problems,
) -> Option<TargetSettings> {
    let table = ["deliver", "targets", name];
    let known = kinds();
    let toml::Value::Table(mut t) = block else {
        problems.push_key(
            &table,
            format!("deliver.targets.{name} is not a table"),
            Some("write [deliver.targets.NAME] with kind = \"...\"".into()),
        );
        return None;
    };
    let kind = match t.remove("kind") {
        Some(toml::Value::String(k)) => k,
        Some(_) | None => {
            problems.push_key(
                &table,
                format!("deliver.targets.{name}: no kind"),
                Some(format!("kind = one of {}", known.join(", "))),
            );
            return None;
        }
    };
    match super::CONNECTORS.iter().find(|r| r.kind == kind) {
        Some(r) => (r.parse)(name, toml::Value::Table(t), problems),
        None => {
            problems.push_in(
                &table,
                "kind",
                format!("deliver.targets.{name}: kind \"{kind}\" is not known"),
                suggest(&kind, &known).or_else(|| Some(format!("known: {}", known.join(", ")))),
            );
            None
        }
    }
}

/// Collects the problems of one target block and offers the checks most connectors share.
/// Messages start with `deliver.targets.NAME:` and point at lines inside the block.
#[derive(Debug)]
pub struct TargetCheck<'a> {
    name: &'a str,
    problems: &'a mut Problems,
}

impl<'a> TargetCheck<'a> {
    /// Checks for the target `name`.
    pub fn new(name: &'a str, problems: &'a mut Problems) -> Self {
        Self { name, problems }
    }

    /// The target's name.
    pub fn name(&self) -> &str {
        self.name
    }

    /// A problem at the first line of the block containing `needle`.
    pub fn push(&mut self, needle: &str, msg: impl fmt::Display, hint: Option<String>) {
        self.problems.push_in(
            &["deliver", "targets", self.name],
            needle,
            format!("deliver.targets.{}: {msg}", self.name),
            hint,
        );
    }

    fn source<'k>(
        key: &'k [&'k str],
        env: Option<&'k str>,
        file: Option<&'k Path>,
    ) -> SecretSource<'k> {
        SecretSource::new(key, env, file)
    }

    /// The secret `key` by the one secret rule (environment, else `<key>_file`); see
    /// [`crate::config::secret`].
    pub fn secret(&mut self, key: &str, env: Option<&str>, file: Option<&Path>) -> Option<Secret> {
        let path = ["deliver", "targets", self.name, key];
        Self::source(&path, env, file).resolve(self.problems)
    }

    /// "set POSTSTELLE__DELIVER__TARGETS__NAME__KEY or name a file with key_file".
    pub fn secret_hint(&self, key: &str) -> String {
        let path = ["deliver", "targets", self.name, key];
        Self::source(&path, None, None).hint()
    }

    /// An http(s) URL without a trailing slash.
    pub fn url(&mut self, key: &str, url: &str) -> String {
        let u = url.trim_end_matches('/').to_string();
        if !(u.starts_with("http://") || u.starts_with("https://")) {
            self.push(
                key,
                format!("{key} \"{url}\" is not an http(s) URL"),
                Some("e.g. https://dms.example.org".into()),
            );
        }
        u
    }

    /// A `{field}` template over the document fields.
    pub fn template(&mut self, key: &str, t: &str) {
        if let Err(bad) = super::fields::check_template(t) {
            self.push(
                key,
                format!("{key}: unknown placeholder {{{bad}}}"),
                Some(format!("known: {}", super::fields::NAMES.join(", "))),
            );
        }
    }

    /// Names of document fields (property mappings).
    pub fn field_names<'k>(&mut self, key: &str, names: impl Iterator<Item = &'k String>) {
        for n in names {
            if !super::fields::NAMES.contains(&n.as_str()) {
                let hint = suggest(n, super::fields::NAMES)
                    .unwrap_or_else(|| format!("known: {}", super::fields::NAMES.join(", ")));
                self.push(key, format!("{key}: unknown field \"{n}\""), Some(hint));
            }
        }
    }

    /// Mailbox ids used as keys of a per-mailbox map.
    pub fn mailbox_ids<'k>(&mut self, key: &str, ids: impl Iterator<Item = &'k String>) {
        for id in ids {
            if MailboxId::parse(id).is_none() {
                self.push(
                    key,
                    format!("{key}: mailbox id \"{id}\" is not valid"),
                    None,
                );
            }
        }
    }

    /// A timeout of at least one second.
    pub fn timeout(secs: u64) -> Duration {
        Duration::from_secs(secs.max(1))
    }
}
