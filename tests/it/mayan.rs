//! The Mayan EDMS target against a real Mayan EDMS 4.12 ([`crate::harness::mayan`]).
//!
//! Everything is checked by reading back through Mayan's own REST API: the document exists
//! once, with the configured type, in the mailbox's cabinet, and its file downloads byte-equal.
//! Redelivery, error classification and re-assignment are checked for Mayan as for every other
//! target by the compliance suite ([`crate::compliance`]).

use crate::harness;
use crate::harness::mayan::{Mayan, SERIAL, mayan};
use poststelle::deliver::{DeliveryError, DeliveryItem};
use poststelle::domain::{DocumentId, MailboxId};
use std::time::Duration;

fn item(mailbox: &str, name: &str, bytes: &[u8]) -> DeliveryItem {
    DeliveryItem {
        document_id: DocumentId::new(),
        mailbox: MailboxId::parse(mailbox).expect("mailbox"),
        mailbox_name: name.into(),
        original_name: "Bauantrag Lindenweg 4.pdf".into(),
        media_type: "application/pdf".into(),
        extension: "pdf".into(),
        bytes: bytes.to_vec(),
        sidecar: serde_json::json!({ "mailbox": mailbox }),
        metadata: poststelle::domain::DocumentMetadata {
            subject: Some("Bauantrag Lindenweg 4".into()),
            ..Default::default()
        },
        clerk: None,
    }
}

/// A real one-page letter, unique to one test (so a stray duplicate cannot pass for ours).
fn pdf_bytes(tag: &str) -> Vec<u8> {
    let subject = format!("Bauantrag Lindenweg 4, Vorgang {tag}");
    harness::letter_pdf(&harness::din_letter(
        &[
            "Stadt Musterstadt",
            "Bauordnungsamt",
            "Rathausplatz 1",
            "12345 Musterstadt",
        ],
        &subject,
        &["hiermit beantrage ich die Genehmigung für einen Carport."],
    ))
}

fn run_tag() -> String {
    DocumentId::new().as_str()[24..].to_string()
}

/// Checks the one document labelled with our id: its type, cabinets and file bytes.
async fn assert_filed(m: &Mayan, it: &DeliveryItem, doc_type: u64, cabinet: &str) -> u64 {
    let docs = m.documents_labelled(it.document_id.as_str()).await;
    assert_eq!(docs.len(), 1, "exactly one document: {docs:?}");
    let d = &docs[0];
    let id = d["id"].as_u64().expect("id");
    assert_eq!(d["document_type"]["id"].as_u64(), Some(doc_type));
    assert!(
        d["description"]
            .as_str()
            .is_some_and(|s| s.contains("Betreff: Bauantrag Lindenweg 4")),
        "{d}"
    );
    assert_eq!(m.cabinet_labels(id).await, vec![cabinet.to_string()]);
    let files = m.files(id).await;
    assert_eq!(files.len(), 1, "exactly one file: {files:?}");
    let file_id = files[0]["id"].as_u64().expect("file id");
    let downloaded = m
        .get_bytes(&format!("/documents/{id}/files/{file_id}/download/"))
        .await;
    assert_eq!(downloaded, it.bytes, "file downloads byte-equal");
    id
}

/// Filed with the configured type and description, into the mailbox's cabinet, with our file.
/// (That a retry finds it and a forward moves it is checked by `compliance::mayan`.)
#[tokio::test]
async fn mayan_files_into_the_cabinet_with_type_description_and_file() {
    let Some(m) = mayan() else { return };
    let _g = SERIAL.lock().await;
    let tag = run_tag();
    let doc_type_label = format!("Eingangspost {tag}");
    let doc_type = m.document_type(&doc_type_label).await;
    let (c63, c51) = (format!("Bauordnung {tag}"), format!("Jugend {tag}"));
    let target = m.target(
        &format!(
            "document_type = \"{doc_type_label}\"\ncabinets = {{ \"63\" = \"{c63}\", \"51\" = \"{c51}\" }}"
        ),
        &m.password,
    );
    let it = item("63", "Bauordnung", &pdf_bytes(&tag));

    let r1 = target.deliver(&it).await.expect("first delivery");
    assert!(!r1.already_present);
    let id = assert_filed(&m, &it, doc_type, &c63).await;
    assert!(
        r1.reference.ends_with(&format!("/documents/{id}/")),
        "{}",
        r1.reference
    );
}

#[tokio::test]
async fn mayan_retry_after_crash_mid_delivery_does_not_duplicate() {
    let Some(m) = mayan() else { return };
    let _g = SERIAL.lock().await;
    let tag = run_tag();
    let doc_type = m.document_type(&format!("Eingangspost {tag}")).await;
    let cabinet = format!("Bauordnung {tag}");
    // Numeric ids in the config, and a document created by an attempt that then crashed
    // before uploading the file.
    let c = m
        .post(
            "/cabinets/",
            serde_json::json!({ "label": cabinet, "parent": null }),
        )
        .await;
    let cabinet_id = c["id"].as_u64().expect("cabinet id");
    let target = m.target(
        &format!(
            "document_type = {doc_type}\ncabinets = {{ \"63\" = {cabinet_id} }}\nfile_wait_secs = 5"
        ),
        &m.password,
    );
    let it = item("63", "Bauordnung", &pdf_bytes(&tag));
    m.post(
        "/documents/",
        serde_json::json!({
            "document_type_id": doc_type,
            "label": it.document_id.as_str(),
            "description": "Betreff: Bauantrag Lindenweg 4",
        }),
    )
    .await;
    let r = target.deliver(&it).await.expect("retried delivery");
    assert!(!r.already_present);
    assert_filed(&m, &it, doc_type, &cabinet).await;
}

#[tokio::test]
async fn mayan_stopped_is_retriable_then_delivered_once() {
    let Some(m) = mayan() else { return };
    let _g = SERIAL.lock().await;
    let tag = run_tag();
    let doc_type_label = format!("Eingangspost {tag}");
    let doc_type = m.document_type(&doc_type_label).await;
    let cabinet = format!("Bauordnung {tag}");
    let target = m.target(
        &format!("document_type = \"{doc_type_label}\"\ncabinets = {{ \"63\" = \"{cabinet}\" }}"),
        &m.password,
    );
    let it = item("63", "Bauordnung", &pdf_bytes(&tag));

    m.control("stop-web");
    let down = target.deliver(&it).await;
    m.control("start-web");
    match down {
        Err(DeliveryError::Retriable(msg)) => assert!(msg.contains("Mayan EDMS"), "{msg}"),
        other => panic!("expected a retriable error while Mayan is down, got {other:?}"),
    }
    // Back up: the retry delivers, exactly once.
    let mut result = target.deliver(&it).await;
    for _ in 0..10 {
        if !matches!(result, Err(DeliveryError::Retriable(_))) {
            break;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        result = target.deliver(&it).await;
    }
    result.expect("delivered after restart");
    assert_filed(&m, &it, doc_type, &cabinet).await;
}

#[tokio::test]
async fn mayan_rejections_are_permanent() {
    let Some(m) = mayan() else { return };
    let _g = SERIAL.lock().await;
    let it = item("63", "Bauordnung", &pdf_bytes("permanent"));

    // (A wrong password is one of the compliance suite's checks.)
    let unknown_type = m.target("document_type = \"Gibt es nicht\"", &m.password);
    match unknown_type.deliver(&it).await {
        Err(DeliveryError::Permanent(msg)) => assert!(msg.contains("Gibt es nicht"), "{msg}"),
        other => panic!("unknown document type: expected a permanent error, got {other:?}"),
    }
    let no_create = m.target(
        "document_type = \"Default\"\ncreate_cabinets = false\ncabinets = { \"63\" = \"Fehlt ganz sicher\" }",
        &m.password,
    );
    match no_create.deliver(&it).await {
        Err(DeliveryError::Permanent(msg)) => assert!(msg.contains("Fehlt ganz sicher"), "{msg}"),
        other => panic!("missing cabinet: expected a permanent error, got {other:?}"),
    }
    assert!(
        m.documents_labelled(it.document_id.as_str())
            .await
            .is_empty()
    );
}

/// The daemon end to end into Mayan: killed (SIGKILL) after the Mayan document was created but
/// before its file was uploaded, then after delivering but before recording it; each restart
/// completes the delivery, and Mayan has the letter exactly once, in the mailbox's cabinet.
#[tokio::test]
async fn daemon_killed_mid_mayan_delivery_files_exactly_once() {
    let Some(m) = mayan() else { return };
    let _g = SERIAL.lock().await;
    let install = harness::Install::new();
    let mayan_env = [
        ("POSTSTELLE__DELIVER__DEFAULT_TARGET", "mayan".to_string()),
        (
            "POSTSTELLE__DELIVER__TARGETS__MAYAN__KIND",
            "mayan".to_string(),
        ),
        ("POSTSTELLE__DELIVER__TARGETS__MAYAN__URL", m.url.clone()),
        ("POSTSTELLE__DELIVER__TARGETS__MAYAN__USER", m.user.clone()),
        (
            "POSTSTELLE__DELIVER__TARGETS__MAYAN__PASSWORD",
            m.password.clone(),
        ),
        (
            "POSTSTELLE__DELIVER__TARGETS__MAYAN__DOCUMENT_TYPE",
            "Default".to_string(),
        ),
        (
            "POSTSTELLE__DELIVER__TARGETS__MAYAN__FILE_WAIT_SECS",
            "10".to_string(),
        ),
    ];
    let bytes = harness::bauantrag_pdf();
    for (round, point) in ["mayan_after_create", "after_deliver"].iter().enumerate() {
        let marker = install.path(&format!("paused-{round}"));
        let marker_s = marker.display().to_string();
        let mut env: Vec<(&str, &str)> = mayan_env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        env.push(("POSTSTELLE_PAUSE_AT", point));
        env.push(("POSTSTELLE_PAUSE_MARKER", &marker_s));
        let d = install.serve(&env);
        if round == 0 {
            install.drop_file("bauantrag.pdf", &bytes);
        }
        harness::wait_file(&marker, Duration::from_secs(180));
        d.kill();
    }
    let docs = install.documents();
    assert_eq!(docs.len(), 1);
    assert_eq!(
        docs[0]["state"], "queued",
        "killed before the delivery was recorded"
    );
    assert_eq!(docs[0]["mailbox"], "63");
    let id = docs[0]["id"].as_str().expect("id").to_string();

    let env: Vec<(&str, &str)> = mayan_env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let _d = install.serve(&env);
    harness::wait_for("delivered", Duration::from_secs(180), || {
        (install.documents()[0]["state"] == "delivered").then_some(())
    });
    let it = DeliveryItem {
        document_id: DocumentId::parse(&id).expect("id"),
        bytes,
        ..item("63", "Bauordnung", b"")
    };
    let docs = m.documents_labelled(&id).await;
    assert_eq!(docs.len(), 1, "exactly one Mayan document: {docs:?}");
    let mayan_id = docs[0]["id"].as_u64().expect("id");
    assert_eq!(
        m.cabinet_labels(mayan_id).await,
        vec!["Bauordnung".to_string()]
    );
    let files = m.get(&format!("/documents/{mayan_id}/files/")).await;
    let files = files["results"].as_array().expect("files");
    assert_eq!(files.len(), 1, "exactly one file: {files:?}");
    let file_id = files[0]["id"].as_u64().expect("file id");
    let downloaded = m
        .get_bytes(&format!("/documents/{mayan_id}/files/{file_id}/download/"))
        .await;
    assert_eq!(downloaded, it.bytes, "the letter downloads byte-equal");
}

#[tokio::test]
async fn mayan_health_check_accepts_the_user_and_refuses_a_wrong_password_or_type() {
    let Some(m) = mayan() else { return };
    let _g = SERIAL.lock().await;
    let tag = run_tag();
    let doc_type_label = format!("Eingangspost {tag}");
    m.document_type(&doc_type_label).await;
    let good = m.target(
        &format!("document_type = \"{doc_type_label}\""),
        &m.password,
    );
    good.check().await.expect("healthy");
    let e = m
        .target(
            &format!("document_type = \"{doc_type_label}\""),
            "not-the-password",
        )
        .check()
        .await
        .expect_err("wrong password");
    assert!(e.message().contains("HTTP 40"), "{e}");
    let e = m
        .target("document_type = \"Gibt es nicht\"", &m.password)
        .check()
        .await
        .expect_err("unknown document type");
    assert!(e.message().contains("Gibt es nicht"), "{e}");
}

/// A document with a clerk also lies in the clerk's cabinet inside the mailbox's (created on
/// the way, `parent` = the mailbox's cabinet); another clerk moves it out of the first one's.
#[tokio::test]
async fn mayan_files_a_clerks_document_into_the_clerks_cabinet_inside_the_mailboxs() {
    let Some(m) = mayan() else { return };
    let _g = SERIAL.lock().await;
    let tag = run_tag();
    let doc_type_label = format!("Eingangspost {tag}");
    let _doc_type = m.document_type(&doc_type_label).await;
    let c63 = format!("Bauordnung {tag}");
    let target = m.target(
        &format!(
            "document_type = \"{doc_type_label}\"\ncabinets = {{ \"63\" = \"{c63}\" }}\n\
             clerk_cabinets = {{ \"nowak\" = \"SB Nowak {tag}\" }}"
        ),
        &m.password,
    );
    let clerk = |id: &str, name: &str| poststelle::domain::ClerkAssignment {
        mailbox: MailboxId::parse("63").expect("id"),
        id: id.into(),
        name: name.into(),
        reason: "Nachnamen A–K: „Albers“".into(),
    };
    let mut it = item("63", "Bauordnung", &pdf_bytes(&tag));
    it.clerk = Some(clerk("schmidt", &format!("Frau Schmidt {tag}")));
    target.deliver(&it).await.expect("delivered");
    let docs = m.documents_labelled(it.document_id.as_str()).await;
    assert_eq!(docs.len(), 1, "{docs:?}");
    let id = docs[0]["id"].as_u64().expect("id");
    let mut labels = m.cabinet_labels(id).await;
    labels.sort();
    let mut want = vec![c63.clone(), format!("Frau Schmidt {tag}")];
    want.sort();
    assert_eq!(labels, want);
    // The clerk's cabinet is a child of the mailbox's.
    let cabinets = m.get(&format!("/documents/{id}/cabinets/")).await;
    let parent_of = |label: &str| {
        cabinets["results"]
            .as_array()
            .and_then(|a| a.iter().find(|c| c["label"] == label))
            .map(|c| c["parent_id"].clone())
            .expect("cabinet")
    };
    let mailbox_cabinet = cabinets["results"]
        .as_array()
        .and_then(|a| a.iter().find(|c| c["label"] == c63.as_str()))
        .map(|c| c["id"].clone())
        .expect("mailbox cabinet");
    assert_eq!(parent_of(&format!("Frau Schmidt {tag}")), mailbox_cabinet);
    // Another clerk: into that clerk's cabinet, out of the first one's.
    it.clerk = Some(clerk("nowak", "Herr Nowak"));
    target.deliver(&it).await.expect("again");
    let mut labels = m.cabinet_labels(id).await;
    labels.sort();
    let mut want = vec![c63, format!("SB Nowak {tag}")];
    want.sort();
    assert_eq!(labels, want);
}
