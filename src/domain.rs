//! Domain types shared by every stage: identifiers, document states and the routing decision.
//! Nothing in here does I/O.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Identifier of a document inside poststelle (a UUID v7, so ids sort by arrival time).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(transparent)]
pub struct DocumentId(String);

impl DocumentId {
    /// A fresh, time-ordered id.
    pub fn new() -> Self {
        Self(uuid::Uuid::now_v7().to_string())
    }

    /// Parses an id received from outside (API path, CLI argument).
    pub fn parse(s: &str) -> Option<Self> {
        uuid::Uuid::parse_str(s).ok().map(|u| Self(u.to_string()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Wraps a value read back from the store (already validated when written).
    pub(crate) fn from_store(s: String) -> Self {
        Self(s)
    }
}

impl Default for DocumentId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for DocumentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Identifier of a department mailbox (KGSt number such as `63`, or any id a town configures).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(transparent)]
pub struct MailboxId(String);

impl MailboxId {
    /// Accepts ids made of ASCII letters, digits, `-`, `_` and `.`, 1 to 64 characters long, so
    /// an id is always safe as a directory name.
    pub fn parse(s: &str) -> Option<Self> {
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && s != "."
            && s != "..";
        ok.then(|| Self(s.to_string()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MailboxId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a document is in its life. Every transition is recorded in the event log.
///
/// ```text
/// received -> extracted -> classified -> review | queued -> delivered
///        \-> quarantined (unreadable)            queued -> dead_letter (gave up)
/// received | extracted | classified -> dead_letter (a stage kept failing; re-drive resumes it)
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DocState {
    /// Bytes and row committed; nothing read yet.
    Received,
    /// Text (and word positions) extracted.
    Extracted,
    /// A decision exists but has not been acted on yet.
    Classified,
    /// Waiting for a person in the Poststelle.
    Review,
    /// Decided; waiting in the outbox for delivery.
    Queued,
    /// The target confirmed it has the document.
    Delivered,
    /// Unreadable input, kept with a reason.
    Quarantined,
    /// Delivery (or extraction/classification) failed permanently or too often; kept for a
    /// re-drive, which resumes the stage that failed.
    DeadLetter,
}

impl DocState {
    /// All states, in pipeline order.
    pub const ALL: [DocState; 8] = [
        DocState::Received,
        DocState::Extracted,
        DocState::Classified,
        DocState::Review,
        DocState::Queued,
        DocState::Delivered,
        DocState::Quarantined,
        DocState::DeadLetter,
    ];

    /// The name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            DocState::Received => "received",
            DocState::Extracted => "extracted",
            DocState::Classified => "classified",
            DocState::Review => "review",
            DocState::Queued => "queued",
            DocState::Delivered => "delivered",
            DocState::Quarantined => "quarantined",
            DocState::DeadLetter => "dead_letter",
        }
    }

    /// Parses a stored state name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

impl fmt::Display for DocState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What decided a routing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DecidedBy {
    /// Rule evidence alone (no model, or the rules overruled it).
    Rule,
    /// The model alone (no rule fired).
    Model,
    /// Rules and model agreed.
    Combined,
    /// A person (review queue or correction).
    Person,
    /// Nothing usable: no text, no evidence.
    Nothing,
    /// An e-mail recipient address mapped to a mailbox by config.
    Recipient,
    /// An e-invoice whose Leitweg-ID is mapped to a mailbox by config.
    Invoice,
}

/// One place in the text where a rule matched.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleHit {
    /// The rule's id (from its file).
    pub rule: String,
    /// The mailbox the rule speaks for.
    pub mailbox: MailboxId,
    /// Evidence weight added to that mailbox (negative = evidence against).
    pub weight: f64,
    /// The zone the rule looked at.
    pub zone: String,
    /// The words that matched, as they stand in the document.
    pub matched: Vec<String>,
    /// Where: page and word index of the first match, when known.
    pub position: Option<String>,
}

/// A model feature that pushed the decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureWeight {
    /// The feature as readable text (a word, word pair or character n-gram).
    pub feature: String,
    /// Its contribution to the winning mailbox's score.
    pub weight: f64,
}

/// A mailbox and its combined score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    /// The mailbox.
    pub mailbox: MailboxId,
    /// Combined probability.
    pub score: f64,
}

/// Why a decision came out as it did: stored with every decision and shown to people.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Explanation {
    /// Rules that fired, with matched words and where.
    pub rules: Vec<RuleHit>,
    /// The model's strongest features for the chosen mailbox.
    pub model_features: Vec<FeatureWeight>,
    /// The model version used, if any.
    pub model_version: Option<String>,
    /// All candidates, best first (the first is the decision, the rest are runner-ups).
    pub candidates: Vec<Candidate>,
    /// The review threshold in force.
    pub threshold: f64,
    /// Why the document went to review, in German (empty when routed automatically).
    pub review_reason: Option<String>,
    /// The text of the address field, when one was found.
    pub address_field: Option<String>,
    /// The subject line, when one was found.
    pub subject: Option<String>,
    /// Why a fixed assignment decided (e.g. a configured Leitweg-ID), in German; empty when
    /// rules and model decided.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basis: Option<String>,
    /// How sure OCR was of page 1's words: mean word confidence 0..100 (None: not read by OCR).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ocr_confidence: Option<f64>,
    /// The clerk inside the mailbox (the mailbox's assignment table, `[[clerks."63"]]`);
    /// `None` when the mailbox has no table or no row matched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clerk: Option<ClerkAssignment>,
}

/// The person or team inside a department that a document is assigned to, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClerkAssignment {
    /// The mailbox whose table chose the clerk.
    pub mailbox: MailboxId,
    /// The clerk's id (what DMS settings map to a user, owner, folder or cabinet).
    pub id: String,
    /// The clerk's name ("Frau Schmidt").
    pub name: String,
    /// Why, in German ("Nachnamen L–Z: „Nowak“").
    pub reason: String,
}

impl ClerkAssignment {
    /// The sentence shown to people: „Sachbearbeitung: Frau Schmidt (Nachnamen L–Z: „Nowak“)“.
    pub fn sentence(&self) -> String {
        format!("Sachbearbeitung: {} ({})", self.name, self.reason)
    }
}

/// The outcome of classification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// Best candidate (also when a person must confirm it).
    pub mailbox: Option<MailboxId>,
    /// Calibrated confidence of the best candidate, 0..1.
    pub confidence: f64,
    /// What decided.
    pub decided_by: DecidedBy,
    /// True when a person must decide.
    pub needs_review: bool,
    /// Why.
    pub explanation: Explanation,
}

/// Facts read from a document that DMS targets map to their properties. Every field is
/// optional: what could not be read is left empty, never guessed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct DocumentMetadata {
    /// Sender's name (person or organisation).
    pub sender_name: Option<String>,
    /// Sender's postal or e-mail address, as one string.
    pub sender_address: Option<String>,
    /// Date of the letter (ISO 8601 `YYYY-MM-DD`).
    pub letter_date: Option<String>,
    /// Subject line (Betreff).
    pub subject: Option<String>,
    /// File references (Aktenzeichen) of the town.
    pub file_references: Vec<String>,
    /// The sender's own reference ("Ihr Zeichen" as seen from the sender: "Unser Zeichen").
    pub their_reference: Option<String>,
    /// Kassenzeichen (payment references of the town's treasury).
    pub kassenzeichen: Vec<String>,
    /// Customer numbers (Kundennummer, Mitgliedsnummer, ...).
    pub customer_numbers: Vec<String>,
    /// IBANs whose checksum is valid, without spaces.
    pub ibans: Vec<String>,
    /// Amounts in the document, as decimal strings with a dot (`1234.56`).
    pub amounts: Vec<String>,
    /// E-invoice data, when the document is (or carries) an XRechnung / ZUGFeRD invoice.
    pub invoice: Option<InvoiceInfo>,
}

/// What identifies a sender across documents: the kinds of [`SenderKey`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SenderKeyKind {
    /// The sender's e-mail address.
    Email,
    /// An IBAN named in the document.
    Iban,
    /// A customer number (Kunden-, Vertrags-, Mitgliedsnummer).
    CustomerNumber,
    /// A Kassenzeichen of the town's treasury.
    Kassenzeichen,
    /// A file reference (Aktenzeichen) of the town.
    FileReference,
    /// The sender's name and postal address together.
    NameAddress,
}

impl SenderKeyKind {
    /// All kinds.
    pub const ALL: [SenderKeyKind; 6] = [
        SenderKeyKind::Email,
        SenderKeyKind::Iban,
        SenderKeyKind::CustomerNumber,
        SenderKeyKind::Kassenzeichen,
        SenderKeyKind::FileReference,
        SenderKeyKind::NameAddress,
    ];

    /// The name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            SenderKeyKind::Email => "email",
            SenderKeyKind::Iban => "iban",
            SenderKeyKind::CustomerNumber => "customer_number",
            SenderKeyKind::Kassenzeichen => "kassenzeichen",
            SenderKeyKind::FileReference => "file_reference",
            SenderKeyKind::NameAddress => "name_address",
        }
    }

    /// Parses a stored kind name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// One key that identifies a document's sender (e-mail address, IBAN, customer number,
/// Kassenzeichen, Aktenzeichen, or name and address), normalised so that the same sender gives
/// the same key however the document writes it. Keys are personal data: they are stored with
/// their document and deleted with it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SenderKey {
    /// What kind of key.
    pub kind: SenderKeyKind,
    /// The normalised key (what documents are compared by).
    pub value: String,
    /// The key as people read it (as the document writes it), for explanations.
    pub shown: String,
}

/// Earlier documents with one sender key that ended in one mailbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Earlier {
    /// Decided by a person (a review decision or a correction).
    pub by_person: u32,
    /// Routed by the machine and delivered (no one objected).
    pub by_machine: u32,
}

impl Earlier {
    /// All of them.
    pub fn count(&self) -> u32 {
        self.by_person + self.by_machine
    }
}

/// The earlier documents that share one sender key with a document, by their final mailbox.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct KeyHistory {
    /// Earlier documents with this key per final mailbox (after corrections).
    pub mailboxes: std::collections::BTreeMap<MailboxId, Earlier>,
}

impl KeyHistory {
    /// Earlier documents with this key, whatever their mailbox.
    pub fn total(&self) -> u32 {
        self.mailboxes.values().map(Earlier::count).sum()
    }
}

/// What the town's own history says about a document's sender: for each of its keys, where
/// earlier documents with the same key went (delivered, or decided by a person).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SenderHistory {
    /// The document's keys with their history (keys without earlier documents are left out).
    pub keys: Vec<(SenderKey, KeyHistory)>,
}

/// The facts of an electronic invoice (XRechnung UBL or CII, ZUGFeRD / Factur-X).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct InvoiceInfo {
    /// Syntax: `xrechnung-ubl`, `xrechnung-cii`, `zugferd`.
    pub format: String,
    /// Invoice number.
    pub number: Option<String>,
    /// Invoice date (ISO 8601).
    pub date: Option<String>,
    /// Supplier (seller) name.
    pub supplier: Option<String>,
    /// Buyer reference: the Leitweg-ID of the receiving authority.
    pub leitweg_id: Option<String>,
    /// Currency code (`EUR`).
    pub currency: Option<String>,
    /// Total without VAT, decimal string.
    pub net_amount: Option<String>,
    /// VAT total, decimal string.
    pub tax_amount: Option<String>,
    /// Total with VAT, decimal string.
    pub gross_amount: Option<String>,
    /// Amount due for payment, decimal string.
    pub due_amount: Option<String>,
}

/// An e-mail committed by the IMAP intake, as other components (acknowledgements) need it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InboundMail {
    /// The document the message became.
    pub document_id: DocumentId,
    /// The configured IMAP account's name.
    pub account: String,
    /// `Message-ID` header, without angle brackets.
    pub message_id: Option<String>,
    /// Sender address (`From`, or `Reply-To` when present), lower case.
    pub from_address: Option<String>,
    /// Sender display name.
    pub from_name: Option<String>,
    /// Recipient addresses (`To` and `Cc`), lower case.
    pub to: Vec<String>,
    /// Decoded subject.
    pub subject: Option<String>,
    /// When the message was committed to the store.
    pub received_at: chrono::DateTime<chrono::Utc>,
    /// `Auto-Submitted` header, if any.
    pub auto_submitted: Option<String>,
    /// `Precedence` header, if any.
    pub precedence: Option<String>,
    /// `List-Id` header, if any.
    pub list_id: Option<String>,
    /// Whether the account sends acknowledgements (Eingangsbestätigungen).
    pub acknowledge: bool,
}

/// Boxed future of a [`MailObserver`].
pub type ObserverFuture<'a> = std::pin::Pin<
    Box<
        dyn std::future::Future<Output = Result<(), Box<dyn std::error::Error + Send + Sync>>>
            + Send
            + 'a,
    >,
>;

/// Told about every e-mail the intake committed, after the commit and before the message is
/// marked on the server. Must be idempotent: after a crash the same message may be reported
/// again. An error keeps the message unmarked, so it is retried.
pub trait MailObserver: Send + Sync + std::fmt::Debug {
    /// The message is committed as `mail.document_id`.
    fn committed<'a>(&'a self, mail: &'a InboundMail) -> ObserverFuture<'a>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mailbox_ids_are_safe_directory_names() {
        assert!(MailboxId::parse("63").is_some());
        assert!(MailboxId::parse("poststelle").is_some());
        assert!(MailboxId::parse("../etc").is_none());
        assert!(MailboxId::parse("..").is_none());
        assert!(MailboxId::parse("").is_none());
        assert!(MailboxId::parse("a/b").is_none());
    }

    #[test]
    fn states_round_trip() {
        for s in DocState::ALL {
            assert_eq!(DocState::parse(s.as_str()), Some(s));
        }
        assert_eq!(DocState::parse("bogus"), None);
    }

    #[test]
    fn document_ids_parse_only_uuids() {
        let id = DocumentId::new();
        assert_eq!(DocumentId::parse(id.as_str()), Some(id));
        assert!(DocumentId::parse("x; DROP TABLE").is_none());
    }
}
