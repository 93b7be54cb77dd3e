//! Sign-in against a real OpenLDAP (`slapd`, see [`crate::harness::ldap`]): bind as the person,
//! their groups read with their own bind (anonymous clients may read nothing), mapped to role
//! and mailboxes.

use crate::harness::ldap::{GROUPS, PEOPLE, Slapd};
use poststelle::auth::Role;
use poststelle::auth::ldap::{DirectoryUser, GroupMapping, LdapError, LdapSettings, login};
use std::time::{Duration, Instant};

const PEOPLE_DATA: &[(&str, &str, &str)] = &[
    ("erika", "Erika Mustermann", "bau-geheim-1"),
    ("max", "Max Mustermann", "zwei-gruppen-2"),
    ("paula", "Paula Post", "post-geheim-3"),
    ("kurt", "Kurt Kantine", "kantine-geheim-4"),
    ("ida", "Ida Admin", "admin-geheim-5"),
];

const GROUP_DATA: &[(&str, &[&str])] = &[
    ("bauamt", &["erika", "max"]),
    ("ordnungsamt", &["max"]),
    ("poststelle", &["paula", "ida"]),
    ("it", &["ida"]),
    ("kantine", &["kurt", "erika"]),
];

pub(crate) fn start() -> Slapd {
    Slapd::start(PEOPLE_DATA, GROUP_DATA)
}

pub(crate) fn settings(url: &str) -> LdapSettings {
    LdapSettings {
        url: url.to_string(),
        starttls: false,
        user_dn: format!("uid={{username}},{PEOPLE}"),
        group_base: GROUPS.to_string(),
        group_filter: "(member={dn})".into(),
        groups: vec![
            GroupMapping {
                group: format!("CN=Bauamt,{}", GROUPS.to_uppercase()),
                role: Role::Fachbereich,
                mailboxes: vec!["63".into(), "61".into()],
            },
            GroupMapping {
                group: "Ordnungsamt".into(),
                role: Role::Fachbereich,
                mailboxes: vec!["32".into(), "63".into()],
            },
            GroupMapping {
                group: "poststelle".into(),
                role: Role::Poststelle,
                mailboxes: vec![],
            },
            GroupMapping {
                group: format!("cn=it,{GROUPS}"),
                role: Role::Admin,
                mailboxes: vec![],
            },
        ],
        timeout_seconds: 2,
        display_name_attribute: Some("cn".into()),
    }
}

#[tokio::test]
async fn right_password_gives_role_and_mailboxes_of_the_group() {
    let ldap = start();
    let s = settings(&ldap.url());
    let u = login(&s, "erika", "bau-geheim-1").await.expect("login");
    assert_eq!(
        u,
        Some(DirectoryUser {
            username: "erika".into(),
            display_name: Some("Erika Mustermann".into()),
            role: Role::Fachbereich,
            mailboxes: vec!["63".into(), "61".into()],
        })
    );
    // The bind was the person's own (the server's log names it).
    assert!(
        ldap.log()
            .contains("BIND dn=\"uid=erika,ou=people,dc=musterstadt,dc=de\""),
        "{}",
        ldap.log()
    );
    let p = login(&s, "paula", "post-geheim-3")
        .await
        .expect("login")
        .expect("paula may sign in");
    assert_eq!(p.role, Role::Poststelle);
    assert!(p.mailboxes.is_empty());

    // Without a display-name attribute none is read.
    let mut s2 = s.clone();
    s2.display_name_attribute = None;
    let u = login(&s2, "erika", "bau-geheim-1").await.expect("login");
    assert_eq!(u.expect("erika").display_name, None);
}

#[tokio::test]
async fn member_of_several_groups_gets_strongest_role_and_all_mailboxes() {
    let ldap = start();
    let s = settings(&ldap.url());
    let max = login(&s, "max", "zwei-gruppen-2")
        .await
        .expect("login")
        .expect("max may sign in");
    assert_eq!(max.role, Role::Fachbereich);
    assert_eq!(max.mailboxes, vec!["63", "61", "32"]);

    let ida = login(&s, "ida", "admin-geheim-5")
        .await
        .expect("login")
        .expect("ida may sign in");
    assert_eq!(ida.role, Role::Admin);
    assert_eq!(ida.display_name.as_deref(), Some("Ida Admin"));
}

#[tokio::test]
async fn wrong_password_unknown_user_and_empty_password_are_refused() {
    let mut ldap = start();
    let s = settings(&ldap.url());
    assert_eq!(login(&s, "erika", "falsch").await.expect("answer"), None);
    assert_eq!(
        login(&s, "erika", "bau-geheim-1 ").await.expect("answer"),
        None
    );
    assert_eq!(
        login(&s, "niemand", "bau-geheim-1").await.expect("answer"),
        None
    );
    assert_eq!(login(&s, "erika", "").await.expect("answer"), None);
    // A password of another person does not open this one.
    assert_eq!(
        login(&s, "erika", "post-geheim-3").await.expect("answer"),
        None
    );

    // An empty password never reaches the server: with the server gone it is still a plain
    // "no", not "unreachable".
    ldap.stop();
    assert_eq!(login(&s, "erika", "").await.expect("no contact"), None);
}

#[tokio::test]
async fn person_in_no_mapped_group_may_not_sign_in() {
    let ldap = start();
    let s = settings(&ldap.url());
    // kurt is only in `kantine`, which is not mapped; his password is right.
    assert_eq!(
        login(&s, "kurt", "kantine-geheim-4").await.expect("answer"),
        None
    );
    // With the mapping he may.
    let mut s2 = s.clone();
    s2.groups.push(GroupMapping {
        group: "kantine".into(),
        role: Role::Fachbereich,
        mailboxes: vec!["99".into()],
    });
    let kurt = login(&s2, "kurt", "kantine-geheim-4")
        .await
        .expect("login")
        .expect("mapped now");
    assert_eq!(kurt.mailboxes, vec!["99"]);
}

#[tokio::test]
async fn usernames_with_filter_or_dn_syntax_are_no_way_in() {
    let ldap = start();
    let s = settings(&ldap.url());
    for name in [
        "*)(uid=*",
        "*",
        "erika,ou=people",
        "erika)(|(cn=*",
        "erika\n",
        "erika\0",
        "uid=erika,ou=people,dc=musterstadt,dc=de",
    ] {
        for pw in ["bau-geheim-1", "x"] {
            let r = login(&s, name, pw).await;
            assert!(
                matches!(r, Ok(None)),
                "{name:?}/{pw}: expected Ok(None), got {r:?}"
            );
        }
    }
    let long = "e".repeat(129);
    assert!(matches!(login(&s, &long, "x").await, Ok(None)));
    // The real account still works after all that.
    assert!(
        login(&s, "erika", "bau-geheim-1")
            .await
            .expect("login")
            .is_some()
    );
}

#[tokio::test]
async fn server_gone_or_frozen_is_unreachable_within_the_timeout() {
    let mut ldap = start();
    let s = settings(&ldap.url());

    ldap.freeze();
    let t = Instant::now();
    let r = login(&s, "erika", "bau-geheim-1").await;
    let took = t.elapsed();
    ldap.thaw();
    assert!(matches!(r, Err(LdapError::Unreachable(_))), "{r:?}");
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_secs(5),
        "took {took:?}"
    );
    assert!(
        r.unwrap_err()
            .to_string()
            .starts_with("Verzeichnisdienst nicht erreichbar")
    );

    // Back again.
    assert!(
        login(&s, "erika", "bau-geheim-1")
            .await
            .expect("login")
            .is_some()
    );

    ldap.stop();
    let t = Instant::now();
    let r = login(&s, "erika", "bau-geheim-1").await;
    assert!(matches!(r, Err(LdapError::Unreachable(_))), "{r:?}");
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
}

#[tokio::test]
async fn starttls_without_tls_on_the_server_is_an_error_not_a_plain_login() {
    let ldap = start();
    let mut s = settings(&ldap.url());
    s.starttls = true;
    let r = login(&s, "erika", "bau-geheim-1").await;
    assert!(r.is_err(), "{r:?}");
    assert!(
        !ldap.log().contains("BIND dn=\"uid=erika"),
        "the password went out in plain text"
    );
}

/// The daemon with `[auth.ldap]`: a directory person signs in through the login form and gets
/// the role and mailboxes of their group; a wrong password is refused and counted like a local
/// one (the name is locked after `max_failures`).
#[test]
fn a_directory_person_signs_in_through_the_login_form_with_the_role_of_the_group() {
    use crate::auth::{post_login, set_cookie};
    let ldap = start();
    let url = ldap.url();
    let d = crate::harness::Install::new()
        .spawn_app_with(&[("POSTSTELLE__AUTH__MAX_FAILURES", "2")], |s| {
            s.auth.ldap = Some(settings(&url))
        });
    let ok = post_login(&d, "erika", "bau-geheim-1");
    assert_eq!(ok.status(), 303, "erika signs in");
    let (session, _) = set_cookie(&ok, "poststelle_sitzung").expect("session cookie");
    let me: serde_json::Value = reqwest::blocking::Client::new()
        .get(d.url("/api/me"))
        .header("Cookie", format!("poststelle_sitzung={session}"))
        .send()
        .expect("me")
        .json()
        .expect("json");
    assert_eq!(me["role"], "fachbereich", "{me}");
    assert_eq!(me["mailboxes"], serde_json::json!(["63", "61"]), "{me}");
    // The account is listed (source ldap), without a password of its own.
    let out = d
        .command()
        .args(["users", "list"])
        .output()
        .expect("users list");
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(listed.lines().any(|l| l.starts_with("erika")), "{listed}");
    // Wrong passwords are refused and counted, whatever the name's case: the second locks it.
    assert_eq!(post_login(&d, "max", "falsch").status(), 401);
    assert_eq!(post_login(&d, "Max", "falsch").status(), 429);
    assert_eq!(
        post_login(&d, "MAX", "zwei-gruppen-2").status(),
        429,
        "another spelling is no second chance"
    );
    assert_eq!(
        post_login(&d, "max", "zwei-gruppen-2").status(),
        429,
        "locked even with the right password"
    );
    // A disabled directory account stays disabled under any spelling.
    let out = d
        .command()
        .args(["users", "disable", "erika"])
        .output()
        .expect("users disable");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(post_login(&d, "erika", "bau-geheim-1").status(), 401);
    assert_eq!(
        post_login(&d, "Erika", "bau-geheim-1").status(),
        429,
        "refused, and counted as the same name (the second failure locks it)"
    );
    // A person of no mapped group is refused.
    assert_eq!(post_login(&d, "kurt", "kantine-geheim-4").status(), 401);
}
