//! The German texts of outgoing mail and how they become RFC 5322 messages.

use super::{berlin_time, vorgangsnummer};
use crate::domain::InboundMail;
use crate::store::outgoing::DigestItem;
use chrono::{DateTime, Utc};
use lettre::message::header::{ContentType, Header, HeaderName, HeaderValue};
use lettre::message::{Mailbox, Message};

/// The `Auto-Submitted` header (RFC 3834).
#[derive(Debug, Clone)]
pub struct AutoSubmitted(pub String);

impl Header for AutoSubmitted {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("Auto-Submitted")
    }
    fn parse(s: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(Self(s.to_string()))
    }
    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), self.0.clone())
    }
}

/// Why a message could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// An address does not parse.
    #[error("ungültige E-Mail-Adresse {0:?}")]
    Address(String),
    /// lettre refused the message.
    #[error("E-Mail kann nicht erstellt werden: {0}")]
    Build(#[from] lettre::error::Error),
}

/// A rendered mail: what the queue stores.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// Subject.
    pub subject: String,
    /// Message-ID without angle brackets.
    pub message_id: String,
    /// Envelope sender.
    pub envelope_from: String,
    /// Envelope recipients.
    pub recipients: Vec<String>,
    /// The formatted message.
    pub message: Vec<u8>,
}

/// Who sends.
#[derive(Debug, Clone)]
pub struct Sender {
    /// Address.
    pub address: String,
    /// Display name.
    pub name: String,
    /// The town's name (signature).
    pub municipality: String,
    /// The web desk's address (digests link to it), if configured.
    pub desk_url: Option<String>,
}

/// `15.03.2026, 14:05 Uhr` in Berlin time.
pub fn german_time(t: DateTime<Utc>) -> String {
    berlin_time(t).format("%d.%m.%Y, %H:%M Uhr").to_string()
}

/// Text from outside made safe for one line: no control characters, at most `max` characters.
fn one_line(s: &str, max: usize) -> String {
    let cleaned: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let cleaned = cleaned.split_whitespace().collect::<Vec<_>>().join(" ");
    if cleaned.chars().count() > max {
        let mut t: String = cleaned.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    } else {
        cleaned
    }
}

fn mailbox(address: &str, name: Option<&str>) -> Result<Mailbox, TemplateError> {
    let addr: lettre::Address = address
        .parse()
        .map_err(|_| TemplateError::Address(address.to_string()))?;
    Ok(Mailbox::new(name.map(|n| one_line(n, 100)), addr))
}

fn new_message_id(from: &str) -> String {
    let domain = from.rsplit_once('@').map(|(_, d)| d).unwrap_or("localhost");
    format!("{}@{}", uuid::Uuid::now_v7(), domain)
}

/// The Eingangsbestätigung for an e-mail: `template` (see
/// [`super::settings::PLACEHOLDERS`]) filled for `mail`, routed to the mailbox named
/// `mailbox_name`.
/// The time of receipt is `mail.received_at` (the commit of the intake).
pub fn acknowledgement(
    sender: &Sender,
    mail: &InboundMail,
    template: &str,
    mailbox_name: &str,
) -> Result<Rendered, TemplateError> {
    let to_addr = mail
        .from_address
        .as_deref()
        .ok_or_else(|| TemplateError::Address(String::new()))?;
    let nummer = vorgangsnummer(&mail.document_id);
    let subject_line = mail
        .subject
        .as_deref()
        .map(|s| one_line(s, 120))
        .filter(|s| !s.is_empty());
    let subject = match &subject_line {
        Some(s) => format!("Eingangsbestätigung {nummer}: {s}"),
        None => format!("Eingangsbestätigung {nummer}"),
    };
    let greeting = match mail.from_name.as_deref().map(|n| one_line(n, 100)) {
        Some(n) if !n.is_empty() => format!("Guten Tag {n},"),
        _ => "Guten Tag,".to_string(),
    };
    let body = super::settings::fill_ack_template(template, |p| match p {
        "anrede" => greeting.clone(),
        "eingang" => german_time(mail.received_at),
        "vorgangsnummer" => nummer.clone(),
        "betreff" => subject_line
            .clone()
            .unwrap_or_else(|| "(ohne Betreff)".into()),
        "postfach" => one_line(mailbox_name, 100),
        "stadt" => sender.municipality.clone(),
        "absender" => sender.name.clone(),
        "kennung" => mail.document_id.to_string(),
        other => format!("{{{other}}}"),
    });
    let message_id = new_message_id(&sender.address);
    let mut b = Message::builder()
        .from(mailbox(&sender.address, Some(&sender.name))?)
        .to(mailbox(to_addr, mail.from_name.as_deref())?)
        .subject(subject.clone())
        .message_id(Some(format!("<{message_id}>")))
        .date_now()
        .header(AutoSubmitted("auto-replied".into()));
    if let Some(orig) = mail.message_id.as_deref().map(|m| one_line(m, 250))
        && !orig.is_empty()
    {
        let orig = format!("<{}>", orig.trim_start_matches('<').trim_end_matches('>'));
        b = b.in_reply_to(orig.clone()).references(orig);
    }
    let msg = b.header(ContentType::TEXT_PLAIN).body(body)?;
    Ok(Rendered {
        subject,
        message_id,
        envelope_from: sender.address.clone(),
        recipients: vec![to_addr.to_string()],
        message: msg.formatted(),
    })
}

/// Which digest.
#[derive(Debug, Clone)]
pub enum DigestFor {
    /// A department mailbox: what was filed into it.
    Department {
        /// Mailbox id.
        id: String,
        /// Mailbox name.
        name: String,
    },
    /// The Poststelle: what waits for a person.
    Review {
        /// Review mailbox name.
        name: String,
    },
}

/// The text of a digest (subject, body).
pub fn digest_text(
    sender: &Sender,
    what: &DigestFor,
    items: &[DigestItem],
    since: DateTime<Utc>,
    until: DateTime<Utc>,
) -> (String, String) {
    let mut body = String::new();
    let subject = match what {
        DigestFor::Department { id, name } => {
            body.push_str(&format!(
                "Guten Tag,\n\nin das Postfach {id} ({name}) wurden vom {} bis {} {} Eingänge abgelegt:\n\n",
                german_time(since),
                german_time(until),
                items.len()
            ));
            format!(
                "Tagesübersicht Postfach {id} ({name}): {} Eingänge",
                items.len()
            )
        }
        DigestFor::Review { name } => {
            body.push_str(&format!(
                "Guten Tag,\n\nin der Prüfung ({name}) warten am {} {} Eingänge auf eine Entscheidung:\n\n",
                german_time(until),
                items.len()
            ));
            format!("Tagesübersicht Prüfung: {} Eingänge warten", items.len())
        }
    };
    for (i, it) in items.iter().enumerate() {
        let at = chrono::DateTime::parse_from_rfc3339(&it.at)
            .map(|t| german_time(t.with_timezone(&Utc)))
            .unwrap_or_else(|_| it.at.clone());
        let title = it
            .subject
            .as_deref()
            .map(|s| one_line(s, 100))
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| one_line(&it.original_name, 100));
        let confidence = it
            .confidence
            .map(|c| format!("{:.0} %", c * 100.0))
            .unwrap_or_else(|| "–".into());
        body.push_str(&format!(
            "{n:>3}. {at}  {nummer}\n     {title}\n     Datei: {file}, Sicherheit: {confidence}\n",
            n = i + 1,
            nummer = vorgangsnummer(&it.document_id),
            file = one_line(&it.original_name, 100),
        ));
        if let Some(url) = &sender.desk_url {
            let page = match what {
                DigestFor::Department { .. } => "eingang",
                DigestFor::Review { .. } => "pruefkorb",
            };
            body.push_str(&format!("     Ansehen: {url}/{page}/{}\n", it.document_id));
        }
        if let DigestFor::Review { .. } = what {
            if let Some(m) = &it.mailbox {
                body.push_str(&format!("     Vorschlag: Postfach {m}\n"));
            }
            if let Some(r) = &it.review_reason {
                body.push_str(&format!("     Grund: {}\n", one_line(r, 200)));
            }
        }
        body.push('\n');
    }
    if let Some(url) = &sender.desk_url {
        body.push_str(&match what {
            DigestFor::Department { .. } => format!(
                "Alle Eingänge im Eingang der Poststelle: {url}/eingang\nFalsch zugeordnet? Dort mit einem Klick weiterleiten oder an die Poststelle zurückgeben.\n\n"
            ),
            DigestFor::Review { .. } => format!("Zum Prüfkorb: {url}/pruefkorb\n\n"),
        });
    }
    body.push_str(&format!(
        "Diese Übersicht wurde automatisch erstellt.\n\nMit freundlichen Grüßen\n{}\nStadtverwaltung {}\n",
        sender.name, sender.municipality
    ));
    (subject, body)
}

/// A digest as a message.
pub fn digest_message(
    sender: &Sender,
    to: &[String],
    subject: &str,
    body: &str,
) -> Result<Rendered, TemplateError> {
    let message_id = new_message_id(&sender.address);
    let mut b = Message::builder()
        .from(mailbox(&sender.address, Some(&sender.name))?)
        .subject(subject)
        .message_id(Some(format!("<{message_id}>")))
        .date_now()
        .header(AutoSubmitted("auto-generated".into()));
    for t in to {
        b = b.to(mailbox(t, None)?);
    }
    let msg = b.header(ContentType::TEXT_PLAIN).body(body.to_string())?;
    Ok(Rendered {
        subject: subject.to_string(),
        message_id,
        envelope_from: sender.address.clone(),
        recipients: to.to_vec(),
        message: msg.formatted(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::DocumentId;

    fn item(id: &DocumentId) -> DigestItem {
        DigestItem {
            document_id: id.clone(),
            at: "2026-12-04T08:15:00.000Z".into(),
            original_name: "scan-0001.pdf".into(),
            subject: Some("Bauantrag Wintergarten".into()),
            confidence: Some(0.97),
            mailbox: None,
            review_reason: None,
        }
    }

    #[test]
    fn digests_link_to_the_desk_when_its_address_is_known() {
        let id = DocumentId::new();
        let mut sender = Sender {
            address: "poststelle@musterstadt.de".into(),
            name: "Poststelle".into(),
            municipality: "Musterstadt".into(),
            desk_url: Some("https://poststelle.musterstadt.local".into()),
        };
        let dept = DigestFor::Department {
            id: "63".into(),
            name: "Bauordnung".into(),
        };
        let now = Utc::now();
        let (_, body) = digest_text(&sender, &dept, &[item(&id)], now, now);
        assert!(
            body.contains(&format!(
                "Ansehen: https://poststelle.musterstadt.local/eingang/{id}"
            )),
            "{body}"
        );
        assert!(
            body.contains("Eingang der Poststelle: https://poststelle.musterstadt.local/eingang\n")
        );
        let review = DigestFor::Review {
            name: "Prüfung".into(),
        };
        let (_, body) = digest_text(&sender, &review, &[item(&id)], now, now);
        assert!(body.contains(&format!("/pruefkorb/{id}")), "{body}");
        sender.desk_url = None;
        let (_, body) = digest_text(&sender, &dept, &[item(&id)], now, now);
        assert!(!body.contains("http"), "no address, no links: {body}");
    }
}
