//! `poststelle users ...`: accounts of the web desk and the API, and their API tokens.
//!
//! A new local account's password comes from the environment variable `POSTSTELLE_PASSWORD`
//! or is asked on the terminal (not echoed). Directory (LDAP) accounts appear by themselves at
//! their first login.

use crate::auth::authenticator::{AuthError, Authenticator};
use crate::config::Settings;
use crate::domain::MailboxId;
use crate::store::Store;
use anyhow::bail;
use clap::Subcommand;
use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

/// The environment variable a new account's password may come from.
pub const PASSWORD_ENV: &str = "POSTSTELLE_PASSWORD";

/// `users` subcommands.
#[derive(Subcommand)]
pub enum UsersCommand {
    /// Add a local account.
    Add {
        /// Login name (letters, digits, `.`, `_`, `-`, `@`).
        name: String,
        /// poststelle | fachbereich | admin.
        #[arg(long)]
        role: String,
        /// A mailbox of a `fachbereich` account (repeat for several).
        #[arg(long = "mailbox")]
        mailboxes: Vec<String>,
        /// Name to show.
        #[arg(long)]
        display_name: Option<String>,
    },
    /// List accounts.
    List {
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Disable an account: it cannot sign in, its sessions end, its tokens stop working.
    Disable {
        /// Login name.
        name: String,
    },
    /// Enable a disabled account again.
    Enable {
        /// Login name.
        name: String,
    },
    /// Create an API token for an account (printed once; only its hash is stored).
    Token {
        /// Login name.
        name: String,
        /// What it is for, e.g. "Scanner Poststelle".
        #[arg(long)]
        label: String,
    },
    /// List API tokens (of one account, or all).
    Tokens {
        /// Login name.
        name: Option<String>,
    },
    /// Revoke an API token by its id.
    Revoke {
        /// The token's id (the part after `pst_`).
        id: String,
    },
}

fn read_password() -> anyhow::Result<String> {
    if let Ok(p) = std::env::var(PASSWORD_ENV) {
        return Ok(p);
    }
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        let mut line = String::new();
        stdin.lock().read_line(&mut line)?;
        return Ok(line.trim_end_matches(['\r', '\n']).to_string());
    }
    eprint!("Passwort: ");
    std::io::stderr().flush()?;
    let line = without_echo(|| {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).map(|_| line)
    })?;
    eprintln!();
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

/// Runs `f` with the terminal's echo off.
fn without_echo<T>(f: impl FnOnce() -> std::io::Result<T>) -> std::io::Result<T> {
    // SAFETY: tcgetattr/tcsetattr on stdin with a zeroed, then filled termios struct.
    let mut term: libc::termios = unsafe { std::mem::zeroed() };
    if unsafe { libc::tcgetattr(libc::STDIN_FILENO, &mut term) } != 0 {
        return f();
    }
    let saved = term;
    term.c_lflag &= !libc::ECHO;
    unsafe { libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &term) };
    let out = f();
    unsafe { libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &saved) };
    out
}

pub(crate) fn actor() -> String {
    std::env::var("USER")
        .map(|u| format!("cli:{u}"))
        .unwrap_or_else(|_| "cli".into())
}

/// Runs a `users` subcommand.
pub async fn run(settings: &Settings, command: UsersCommand) -> anyhow::Result<ExitCode> {
    let store = Store::open(&settings.store.url).await?;
    let auth = Authenticator::new(
        store.clone(),
        settings.auth.clone(),
        settings.api.token.clone(),
    );
    match command {
        UsersCommand::Add {
            name,
            role,
            mailboxes,
            display_name,
        } => {
            let known: Vec<MailboxId> = settings.mailboxes.iter().map(|m| m.id.clone()).collect();
            let (role, ids) = crate::auth::check_account(&name, &role, &mailboxes, &known)?;
            let password = read_password()?;
            match auth
                .add_local_user(
                    &name,
                    role,
                    &ids,
                    &password,
                    display_name.as_deref(),
                    &actor(),
                )
                .await
            {
                Ok(()) => {}
                Err(AuthError::Password(e)) => bail!("{e}"),
                Err(e) => return Err(e.into()),
            }
            println!("added {name} ({role})");
        }
        UsersCommand::List { json } => {
            for u in store.users().await? {
                if json {
                    println!("{}", serde_json::to_string(&u)?);
                } else {
                    let boxes: Vec<&str> = u.mailboxes.iter().map(|m| m.as_str()).collect();
                    println!(
                        "{:<20} {:<12} {:<6} {:<9} {}",
                        u.name,
                        u.role.as_str(),
                        u.source,
                        if u.disabled { "disabled" } else { "active" },
                        boxes.join(",")
                    );
                }
            }
        }
        UsersCommand::Disable { name } => {
            store.set_user_disabled(&name, true, &actor()).await?;
            println!("disabled {name}");
        }
        UsersCommand::Enable { name } => {
            store.set_user_disabled(&name, false, &actor()).await?;
            println!("enabled {name}");
        }
        UsersCommand::Token { name, label } => {
            let (id, token) = auth.create_token(&name, &label, &actor()).await?;
            eprintln!("token {id} for {name} ({label}); shown only now:");
            println!("{token}");
        }
        UsersCommand::Tokens { name } => {
            for t in store.tokens(name.as_deref()).await? {
                println!(
                    "{:<14} {:<20} {:<8} {} {}",
                    t.id,
                    t.user_name,
                    if t.revoked_at.is_some() {
                        "revoked"
                    } else {
                        "active"
                    },
                    t.created_at,
                    t.label
                );
            }
        }
        UsersCommand::Revoke { id } => {
            if store.revoke_token(&id, &actor()).await? {
                println!("revoked {id}");
            } else {
                bail!("no active token {id}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use crate::auth::valid_name;

    #[test]
    fn names_are_plain() {
        assert!(valid_name("e.mueller"));
        assert!(valid_name("scanner-1@poststelle"));
        for bad in ["", "a b", "x;y", "ä", &"a".repeat(65)] {
            assert!(!valid_name(bad), "{bad}");
        }
    }
}
