//! The twenty letters of the morning's stack: German letters to the town's departments in
//! several layouts (DIN 5008 form B with a return-address line, sender top left, sender top
//! right, a company's letterhead with an information column), of one to three pages; their
//! continuation pages say so in different ways ("Seite 2 von 3", "- 2 -", a sentence that
//! goes on, or nothing at all), and one letter carries a note that may as well begin a letter
//! of its own.

/// A line of text on an A4 page: (x mm from left, y mm from top, font size pt, text).
pub type L = (f32, f32, f32, String);

/// How a letter is set apart from the one before it in the stack.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sep {
    /// Nothing: the letter's first page must tell (or it is the stack's first letter).
    Nothing,
    /// A patch-T sheet.
    PatchT,
    /// A sheet with the separator value as Code 128.
    Code128,
    /// A sheet with the separator value as QR code.
    Qr,
}

/// One letter of the stack.
pub struct Letter {
    /// The mailbox it belongs in.
    pub mailbox: &'static str,
    /// What stands before it in the stack.
    pub sep: Sep,
    /// Its pages.
    pub pages: Vec<Vec<L>>,
    /// Printed on both sides of the paper: page 2 is the back of sheet 1.
    pub two_sided: bool,
    /// Its second page is a note the split cannot be sure about.
    pub doubtful: bool,
}

fn line(x: f32, y: f32, size: f32, t: &str) -> L {
    (x, y, size, t.to_string())
}

/// Body, closing and signature from `y` down.
fn body(out: &mut Vec<L>, y: f32, salutation: &str, text: &[&str], closing: &[&str]) {
    out.push(line(25.0, y, 11.0, salutation));
    let mut y = y + 8.0;
    for t in text {
        out.push(line(25.0, y, 11.0, t));
        y += 6.0;
    }
    y += 6.0;
    for (i, t) in closing.iter().enumerate() {
        out.push(line(
            25.0,
            y + if i == 0 { 0.0 } else { 6.0 + 6.0 * i as f32 },
            11.0,
            t,
        ));
    }
}

/// DIN 5008 form B: a return-address line above the address field, the date on the right.
fn din_b(
    ret: &str,
    to: &[&str],
    date: &str,
    subject: &str,
    salutation: &str,
    text: &[&str],
    closing: &[&str],
) -> Vec<L> {
    let mut l = vec![line(25.0, 50.0, 7.0, ret), line(125.0, 50.0, 10.0, date)];
    for (i, r) in to.iter().enumerate() {
        l.push(line(25.0, 58.0 + i as f32 * 5.0, 11.0, r));
    }
    l.push(line(25.0, 103.0, 11.0, subject));
    body(&mut l, 115.0, salutation, text, closing);
    l
}

/// A citizen's letter: the sender's block top left, the address below it, the date right.
fn top_left(
    from: &[&str],
    to: &[&str],
    date: &str,
    subject: &str,
    salutation: &str,
    text: &[&str],
    closing: &[&str],
) -> Vec<L> {
    let mut l = Vec::new();
    for (i, f) in from.iter().enumerate() {
        l.push(line(25.0, 18.0 + i as f32 * 5.0, 11.0, f));
    }
    for (i, r) in to.iter().enumerate() {
        l.push(line(25.0, 48.0 + i as f32 * 5.0, 11.0, r));
    }
    l.push(line(120.0, 78.0, 11.0, date));
    l.push(line(25.0, 90.0, 11.0, &format!("Betreff: {subject}")));
    body(&mut l, 102.0, salutation, text, closing);
    l
}

/// The sender's block top right, the address left below it, the date under the sender.
fn top_right(
    from: &[&str],
    to: &[&str],
    date: &str,
    subject: &str,
    salutation: &str,
    text: &[&str],
    closing: &[&str],
) -> Vec<L> {
    let mut l = Vec::new();
    for (i, f) in from.iter().enumerate() {
        l.push(line(135.0, 15.0 + i as f32 * 5.0, 10.0, f));
    }
    for (i, r) in to.iter().enumerate() {
        l.push(line(25.0, 50.0 + i as f32 * 5.0, 11.0, r));
    }
    l.push(line(135.0, 85.0, 10.0, date));
    l.push(line(25.0, 97.0, 12.0, subject));
    body(&mut l, 109.0, salutation, text, closing);
    l
}

/// A company's letterhead: its name large, a line under it, an information column beside
/// the address field.
#[allow(clippy::too_many_arguments)]
fn letterhead(
    company: &str,
    tagline: &str,
    to: &[&str],
    info: &[&str],
    subject: &str,
    salutation: &str,
    text: &[&str],
    closing: &[&str],
) -> Vec<L> {
    let mut l = vec![
        line(25.0, 14.0, 18.0, company),
        line(25.0, 24.0, 8.0, tagline),
    ];
    for (i, r) in to.iter().enumerate() {
        l.push(line(25.0, 52.0 + i as f32 * 5.0, 11.0, r));
    }
    for (i, r) in info.iter().enumerate() {
        l.push(line(130.0, 52.0 + i as f32 * 5.0, 9.0, r));
    }
    l.push(line(25.0, 98.0, 11.0, subject));
    body(&mut l, 110.0, salutation, text, closing);
    l
}

/// A continuation page: an optional header (a page number), the text, the closing.
fn follow(header: Option<&str>, text: &[&str], closing: &[&str]) -> Vec<L> {
    let mut l = Vec::new();
    let mut y = 25.0;
    if let Some(h) = header {
        l.push(line(95.0, 15.0, 10.0, h));
        y = 30.0;
    }
    for t in text {
        l.push(line(25.0, y, 11.0, t));
        y += 6.0;
    }
    y += 6.0;
    for (i, t) in closing.iter().enumerate() {
        l.push(line(
            25.0,
            y + if i == 0 { 0.0 } else { 6.0 + 6.0 * i as f32 },
            11.0,
            t,
        ));
    }
    l
}

/// With a footer line at the bottom of the page.
fn footer(mut page: Vec<L>, text: &str) -> Vec<L> {
    page.push(line(95.0, 280.0, 9.0, text));
    page
}

const TOWN: &str = "12345 Musterstadt";
const HALL: &str = "Rathausplatz 1";
const DAMEN: &str = "Sehr geehrte Damen und Herren,";
const MFG: &str = "Mit freundlichen Grüßen";

fn letter(mailbox: &'static str, sep: Sep, pages: Vec<Vec<L>>) -> Letter {
    Letter {
        mailbox,
        sep,
        pages,
        two_sided: false,
        doubtful: false,
    }
}

/// The stack: letters 1-4 after patch-T sheets, 5-8 after Code 128 sheets, 9-12 after QR
/// sheets, 13-20 with no separator at all.
pub fn stack() -> Vec<Letter> {
    let mut out = Vec::new();
    // 1: Bauordnung, DIN form B, "Seite 2 von 2".
    out.push(letter(
        "63",
        Sep::Nothing,
        vec![
            din_b(
                "Thomas Berger · Am Mühlbach 7 · 12345 Musterstadt",
                &["Stadt Musterstadt", "Bauordnungsamt", HALL, TOWN],
                "Musterstadt, 14.01.2025",
                "Bauantrag für einen Carport, Flurstück 212",
                DAMEN,
                &[
                    "hiermit beantrage ich die Baugenehmigung für einen offenen Carport an",
                    "der Grundstücksgrenze meines Hauses Am Mühlbach 7. Der Carport soll",
                    "aus Holz errichtet werden und eine Grundfläche von 6 x 3 Metern haben.",
                    "Lageplan, Bauzeichnungen und Baubeschreibung sind beigefügt.",
                ],
                &[],
            ),
            follow(
                Some("Seite 2 von 2"),
                &[
                    "Die Zustimmung meines Nachbarn zur Grenzbebauung reiche ich nach.",
                    "Für Rückfragen erreichen Sie mich unter 0151 2345678.",
                ],
                &[MFG, "Thomas Berger"],
            ),
        ],
    ));
    // 2: Steueramt, sender top left.
    out.push(letter(
        "22",
        Sep::PatchT,
        vec![top_left(
            &["Ingrid Sommer", "Birkenallee 15", TOWN],
            &[
                "Stadt Musterstadt",
                "Steueramt",
                "Postfach 1120",
                "12340 Musterstadt",
            ],
            "Musterstadt, 16.01.2025",
            "Abmeldung meines Hundes von der Hundesteuer",
            DAMEN,
            &[
                "leider ist unser Hund Max am 2. Januar verstorben. Ich bitte Sie daher,",
                "ihn zum Monatsende von der Hundesteuer abzumelden. Die Steuermarke",
                "lege ich diesem Schreiben bei. Zu viel gezahlte Steuer erstatten Sie",
                "bitte auf mein bekanntes Konto.",
            ],
            &[MFG, "Ingrid Sommer"],
        )],
    ));
    // 3: Tiefbau, sender top right.
    out.push(letter(
        "66",
        Sep::PatchT,
        vec![top_right(
            &["Karl-Heinz Wolff", "Ahornweg 3", TOWN, "Tel. 02345 98765"],
            &[
                "An die",
                "Stadtverwaltung Musterstadt",
                "Tiefbauamt",
                HALL,
                TOWN,
            ],
            "20.01.2025",
            "Defekte Straßenlaterne im Ahornweg",
            DAMEN,
            &[
                "seit etwa zwei Wochen ist die Straßenlaterne vor dem Haus Ahornweg 5",
                "ausgefallen. Der Gehweg ist abends vollständig dunkel, was besonders",
                "für ältere Anwohner gefährlich ist. Ich bitte um eine baldige Reparatur.",
            ],
            &[MFG, "K.-H. Wolff"],
        )],
    ));
    // 4: Jugendamt, printed on both sides; page 2 goes on mid-sentence.
    let mut kita = letter(
        "51",
        Sep::PatchT,
        vec![
            din_b(
                "Familie Yilmaz · Gartenstraße 28 · 12345 Musterstadt",
                &[
                    "Stadt Musterstadt",
                    "Jugendamt",
                    "Kindertagesbetreuung",
                    HALL,
                    TOWN,
                ],
                "Musterstadt, 22.01.2025",
                "Antrag auf einen Kita-Platz für unseren Sohn Emre",
                "Sehr geehrte Frau Albers,",
                &[
                    "für unseren Sohn Emre, geboren am 04.09.2023, beantragen wir einen",
                    "Betreuungsplatz in einer Kindertagesstätte ab dem 1. August 2025.",
                    "Wir sind beide berufstätig und benötigen eine Betreuung von 35",
                    "Stunden in der Woche. Am liebsten wäre uns die Kita Sonnenblume in",
                    "der Nähe unserer Wohnung, wir sind",
                ],
                &[],
            ),
            follow(
                None,
                &[
                    "aber auch für andere Einrichtungen offen. Die",
                    "Bescheinigungen unserer Arbeitgeber reichen wir gern nach.",
                ],
                &[MFG, "Ayse und Murat Yilmaz"],
            ),
        ],
    );
    kita.two_sided = true;
    out.push(kita);
    // 5: Standesamt, sender top left.
    out.push(letter(
        "34",
        Sep::Code128,
        vec![top_left(
            &["Julia Neumann", "Lindenstraße 40", TOWN],
            &["Stadt Musterstadt", "Standesamt", HALL, TOWN],
            "Musterstadt, 27.01.2025",
            "Anmeldung zur Eheschließung",
            DAMEN,
            &[
                "mein Verlobter Markus Hoffmann und ich möchten im Sommer heiraten und",
                "bitten um einen Termin zur Anmeldung der Eheschließung. Als Trautermin",
                "wünschen wir uns Freitag, den 13. Juni 2025, im Trauzimmer des",
                "Rathauses. Welche Urkunden wir mitbringen müssen, teilen Sie uns bitte mit.",
            ],
            &[MFG, "Julia Neumann"],
        )],
    ));
    // 6: Grünflächen, DIN form B, "- 2 -".
    out.push(letter(
        "67",
        Sep::Code128,
        vec![
            din_b(
                "Dr. Ulrich Kessler · Parkstraße 9 · 12345 Musterstadt",
                &["Stadt Musterstadt", "Grünflächenamt", HALL, TOWN],
                "Musterstadt, 29.01.2025",
                "Fällantrag nach der Baumschutzsatzung für eine Rotbuche",
                DAMEN,
                &[
                    "auf meinem Grundstück Parkstraße 9 steht eine etwa 80 Jahre alte",
                    "Rotbuche. Ein Gutachter hat einen Pilzbefall am Stammfuß festgestellt;",
                    "die Standsicherheit ist nach seiner Einschätzung nicht mehr gegeben.",
                    "Ich beantrage daher die Fällgenehmigung für diesen Baum.",
                ],
                &[],
            ),
            follow(
                Some("- 2 -"),
                &[
                    "Das Gutachten des Sachverständigenbüros Grünwald liegt bei. Eine",
                    "Ersatzpflanzung an anderer Stelle des Gartens sage ich gern zu.",
                ],
                &[MFG, "Dr. Ulrich Kessler", "Anlage: Baumgutachten"],
            ),
        ],
    ));
    // 7: Kämmerei, a company's invoice on its letterhead.
    out.push(letter(
        "20",
        Sep::Code128,
        vec![letterhead(
            "Elektro Becker GmbH",
            "Elektroinstallation · Beleuchtung · Netzwerktechnik · Industriestraße 12 · 12347 Nachbarstadt",
            &[
                "Stadt Musterstadt",
                "Kämmerei - Rechnungseingang",
                HALL,
                TOWN,
            ],
            &[
                "Rechnungsnummer: 2025-0147",
                "Kundennummer: 30815",
                "Datum: 30.01.2025",
            ],
            "Rechnung für Elektroarbeiten im Bürgerhaus",
            DAMEN,
            &[
                "für die im Januar ausgeführten Arbeiten berechnen wir Ihnen:",
                "Austausch der Flurbeleuchtung, 24 LED-Leuchten mit Montage  4.860,00 EUR",
                "zuzüglich 19 % Umsatzsteuer  923,40 EUR",
                "Rechnungsbetrag  5.783,40 EUR",
                "Bitte überweisen Sie den Rechnungsbetrag innerhalb von 30 Tagen.",
            ],
            &[MFG, "Elektro Becker GmbH"],
        )],
    ));
    // 8: Sozialamt, three pages numbered "Seite n von 3" at the foot and the head.
    out.push(letter(
        "50",
        Sep::Code128,
        vec![
            footer(
                top_left(
                    &["Renate Kaiser", "Rosenweg 2a", TOWN],
                    &[
                        "Stadt Musterstadt",
                        "Sozialamt - Wohngeldstelle",
                        HALL,
                        TOWN,
                    ],
                    "Musterstadt, 03.02.2025",
                    "Weiterleistungsantrag Wohngeld, Ihr Zeichen 50-WG-2024-0815",
                    DAMEN,
                    &[
                        "mein Wohngeld ist bis zum 28.02.2025 bewilligt. Hiermit beantrage",
                        "ich die Weiterleistung ab dem 1. März 2025. Den ausgefüllten Antrag",
                        "und die Nachweise über mein Einkommen füge ich bei.",
                    ],
                    &[],
                ),
                "Seite 1 von 3",
            ),
            follow(
                Some("Seite 2 von 3"),
                &[
                    "Meine Rente ist zum Juli um 4,6 Prozent gestiegen und beträgt jetzt",
                    "1.012,40 Euro im Monat. Weitere Einkünfte habe ich nicht. Die Miete",
                    "einschließlich der Nebenkosten ist unverändert geblieben.",
                ],
                &[],
            ),
            follow(
                Some("Seite 3 von 3"),
                &[
                    "Anlagen:",
                    "- Rentenanpassungsmitteilung",
                    "- Mietbescheinigung des Vermieters",
                    "- Kontoauszüge der letzten drei Monate",
                ],
                &[MFG, "Renate Kaiser"],
            ),
        ],
    ));
    // 9: Schulamt, DIN form B.
    out.push(letter(
        "40",
        Sep::Qr,
        vec![din_b(
            "Sandra Vogel · Feldstraße 11 · 12345 Musterstadt",
            &["Stadt Musterstadt", "Schulamt", HALL, TOWN],
            "Musterstadt, 05.02.2025",
            "Übernahme der Schülerfahrkosten für meine Tochter Lena",
            DAMEN,
            &[
                "meine Tochter Lena besucht seit diesem Schuljahr die 5. Klasse des",
                "Städtischen Gymnasiums. Ihr Schulweg ist länger als 3,5 Kilometer.",
                "Ich beantrage daher die Übernahme der Kosten für ein Schülerticket.",
                "Die Schulbescheinigung liegt bei.",
            ],
            &[MFG, "Sandra Vogel"],
        )],
    ));
    // 10: Ordnungsamt, a café's letterhead, printed on both sides.
    let mut cafe = letter(
        "32",
        Sep::Qr,
        vec![
            letterhead(
                "Café Lindenblüte",
                "Inhaberin Maria Russo · Marktstraße 4 · 12345 Musterstadt",
                &[
                    "Stadt Musterstadt",
                    "Ordnungsamt",
                    "Gewerbeangelegenheiten",
                    HALL,
                    TOWN,
                ],
                &["Telefon 02345 7788", "Musterstadt, 12.02.2025"],
                "Gaststättenerlaubnis für das Café Lindenblüte",
                DAMEN,
                &[
                    "zum 1. April 2025 übernehme ich das Café in der Marktstraße 4.",
                    "Ich bitte um die Erlaubnis zum Ausschank alkoholischer Getränke nach",
                    "dem Gaststättengesetz. Die Gewerbeanmeldung habe ich bereits",
                    "abgegeben.",
                ],
                &[],
            ),
            follow(
                Some("Seite 2 von 2"),
                &[
                    "Ein Führungszeugnis und die Bescheinigung über die Unterrichtung",
                    "durch die Industrie- und Handelskammer reiche ich nach.",
                ],
                &[MFG, "Maria Russo"],
            ),
        ],
    );
    cafe.two_sided = true;
    out.push(cafe);
    // 11: Bürgeramt, sender top right.
    out.push(letter(
        "33",
        Sep::Qr,
        vec![top_right(
            &["Lukas Schmitt", "Bahnhofstraße 19", TOWN],
            &["Stadt Musterstadt", "Bürgeramt", HALL, TOWN],
            "Musterstadt, 14.02.2025",
            "Verlust meines Personalausweises",
            DAMEN,
            &[
                "bei meinem Umzug ist mein Personalausweis verloren gegangen. Ich melde",
                "den Verlust hiermit an und bitte um einen Termin, um einen neuen Ausweis",
                "zu beantragen. Eine Meldebescheinigung für meinen Arbeitgeber benötige",
                "ich ebenfalls.",
            ],
            &[MFG, "Lukas Schmitt"],
        )],
    ));
    // 12: Personalamt, an application; page 2 goes on mid-sentence.
    out.push(letter(
        "11",
        Sep::Qr,
        vec![
            top_left(
                &[
                    "Anna Krüger",
                    "Eichendorffstraße 8",
                    "12349 Nachbarstadt",
                    "anna.krueger@example.org",
                ],
                &["Stadt Musterstadt", "Personalamt", HALL, TOWN],
                "Nachbarstadt, 17.02.2025",
                "Bewerbung, Kennziffer 10-2025-04",
                DAMEN,
                &[
                    "mit großem Interesse habe ich Ihre Stellenausschreibung gelesen und",
                    "bewerbe mich hiermit um die Stelle einer Verwaltungsfachangestellten.",
                    "Nach meiner Ausbildung arbeite ich seit vier Jahren",
                ],
                &[],
            ),
            follow(
                None,
                &[
                    "in der Sachbearbeitung einer Kreisverwaltung und kenne den TVöD aus der",
                    "Praxis. Über eine Einladung zu einem Vorstellungsgespräch freue ich",
                    "mich.",
                ],
                &[MFG, "Anna Krüger", "Anlagen: Lebenslauf, Zeugnisse"],
            ),
        ],
    ));
    // From here on no separator: the first pages tell.
    // 13: Stadtkasse, DIN form B.
    out.push(letter(
        "21",
        Sep::Nothing,
        vec![din_b(
            "Michael Braun · Kirchgasse 6 · 12345 Musterstadt",
            &["Stadt Musterstadt", "Stadtkasse", HALL, TOWN],
            "Musterstadt, 18.02.2025",
            "Antrag auf Ratenzahlung, Kassenzeichen 5.2100.0347.12",
            DAMEN,
            &[
                "Ihre Mahnung über 1.240,00 Euro habe ich erhalten. Wegen einer",
                "längeren Krankheit kann ich den Betrag nicht auf einmal zahlen. Ich",
                "bitte Sie, mir eine Ratenzahlung von monatlich 150,00 Euro zu gewähren.",
            ],
            &[MFG, "Michael Braun"],
        )],
    ));
    // 14: Stadtplanung, a citizens' group; page 2 has no page number.
    out.push(letter(
        "61",
        Sep::Nothing,
        vec![
            top_left(
                &[
                    "Bürgerinitiative Nordviertel",
                    "c/o Petra Lange",
                    "Wiesenweg 14",
                    TOWN,
                ],
                &["Stadt Musterstadt", "Amt für Stadtplanung", HALL, TOWN],
                "Musterstadt, 20.02.2025",
                "Stellungnahme zum Bebauungsplan Nr. 47",
                DAMEN,
                &[
                    "zum Entwurf des Bebauungsplans Nr. 47 in der Offenlage nehmen wir",
                    "wie folgt Stellung: Die geplante Bebauung der Streuobstwiese am",
                    "Wiesenweg lehnen wir ab. Die Wiese ist Lebensraum für Fledermäuse",
                    "und Steinkäuze und ein wichtiger Teil der",
                ],
                &[],
            ),
            follow(
                None,
                &[
                    "Frischluftschneise für das Nordviertel. Wir bitten, die Fläche im",
                    "Plan als Ausgleichsfläche festzusetzen und die Bebauung auf das",
                    "Gewerbegebiet an der Bahnlinie zu lenken.",
                ],
                &[MFG, "Petra Lange für die Bürgerinitiative"],
            ),
        ],
    ));
    // 15: Hauptamt (the data protection officer), sender top right.
    out.push(letter(
        "10",
        Sep::Nothing,
        vec![top_right(
            &["Stefan Richter", "Uferstraße 2", TOWN],
            &[
                "Stadt Musterstadt",
                "Der Datenschutzbeauftragte",
                HALL,
                TOWN,
            ],
            "21.02.2025",
            "Auskunft nach Art. 15 DSGVO",
            DAMEN,
            &[
                "ich bitte um Auskunft, welche personenbezogenen Daten die",
                "Stadtverwaltung über mich speichert, zu welchem Zweck und an wen sie",
                "übermittelt wurden. Bitte senden Sie mir eine Kopie der Daten.",
            ],
            &[MFG, "Stefan Richter"],
        )],
    ));
    // 16: Abfallwirtschaft, a property manager, DIN form B.
    out.push(letter(
        "70",
        Sep::Nothing,
        vec![din_b(
            "Hausverwaltung Peters GmbH · Schillerplatz 1 · 12345 Musterstadt",
            &["Stadt Musterstadt", "Abfallwirtschaft", HALL, TOWN],
            "Musterstadt, 24.02.2025",
            "Sperrmüllabholung für das Haus Schillerplatz 1",
            DAMEN,
            &[
                "nach der Räumung einer Wohnung im Haus Schillerplatz 1 bitten wir um",
                "einen Termin für die Abholung von Sperrmüll: zwei Schränke, ein Sofa",
                "und etwa zehn Säcke Hausrat. Außerdem braucht das Haus eine zweite",
                "Biotonne.",
            ],
            &[MFG, "i. A. Sabine Peters"],
        )],
    ));
    // 17: Steueramt, sender top left, "Seite 2 von 2" and a sentence that goes on.
    out.push(letter(
        "22",
        Sep::Nothing,
        vec![
            top_left(
                &["Werner und Gisela Hartmann", "Talstraße 31", TOWN],
                &["Stadt Musterstadt", "Steueramt", HALL, TOWN],
                "Musterstadt, 25.02.2025",
                "Widerspruch gegen den Grundsteuerbescheid, Steuernummer 220.123.4567",
                DAMEN,
                &[
                    "gegen den Grundsteuerbescheid für 2025 legen wir hiermit Widerspruch",
                    "ein. Die festgesetzte Grundsteuer ist gegenüber dem Vorjahr um mehr",
                    "als das Doppelte gestiegen. Der Bescheid beruht auf dem Messbescheid",
                ],
                &[],
            ),
            follow(
                Some("Seite 2 von 2"),
                &[
                    "des Finanzamts, gegen den wir ebenfalls Einspruch eingelegt haben.",
                    "Wir bitten, die Vollziehung bis zur Entscheidung auszusetzen.",
                ],
                &[MFG, "Werner Hartmann"],
            ),
        ],
    ));
    // 18: Grünflächen, with a note that has a date and a salutation but no address field:
    // maybe a letter of its own, maybe not.
    let mut playground = letter(
        "67",
        Sep::Nothing,
        vec![
            din_b(
                "Claudia Schmidt · Lerchenweg 5 · 12345 Musterstadt",
                &["Stadt Musterstadt", "Grünflächenamt", HALL, TOWN],
                "Musterstadt, 26.02.2025",
                "Defekte Schaukel auf dem Spielplatz am Lerchenweg",
                DAMEN,
                &[
                    "auf dem Spielplatz am Lerchenweg ist eine Kette der großen Schaukel",
                    "gerissen, und die Rutsche hat eine scharfe Kante. Bitte sperren Sie",
                    "die Geräte, bis sie repariert sind. Fotos der Schäden lege ich bei.",
                ],
                &[MFG, "Claudia Schmidt"],
            ),
            vec![
                line(125.0, 30.0, 10.0, "Musterstadt, 26.02.2025"),
                line(25.0, 50.0, 11.0, "Liebe Frau Schmidt,"),
                line(
                    25.0,
                    58.0,
                    11.0,
                    "wie am Telefon besprochen lege ich die Fotos der Schaukel bei.",
                ),
                line(25.0, 64.0, 11.0, "Viele Grüße"),
            ],
        ],
    );
    playground.doubtful = true;
    out.push(playground);
    // 19: Ordnungsamt, printed on both sides, "Seite 2 von 2".
    let mut noise = letter(
        "32",
        Sep::Nothing,
        vec![
            top_left(
                &["Hans-Jürgen Krause", "Mozartstraße 17", TOWN],
                &["Stadt Musterstadt", "Ordnungsamt", HALL, TOWN],
                "Musterstadt, 27.02.2025",
                "Wiederholte Ruhestörung in der Mozartstraße",
                DAMEN,
                &[
                    "seit Wochen bellen die beiden Hunde im Garten des Hauses Mozartstraße",
                    "21 jede Nacht zwischen 22 und 2 Uhr. Gespräche mit dem Halter blieben",
                    "ohne Erfolg. Die Nachtruhe ist so nicht mehr einzuhalten.",
                ],
                &[],
            ),
            follow(
                Some("Seite 2 von 2"),
                &[
                    "Ich habe die Zeiten der Lärmbelästigung in den letzten zwei Wochen",
                    "aufgeschrieben; die Liste liegt bei. Bitte schreiten Sie ein.",
                ],
                &[MFG, "Hans-Jürgen Krause"],
            ),
        ],
    );
    noise.two_sided = true;
    out.push(noise);
    // 20: Standesamt, an undertaker's letterhead.
    out.push(letter(
        "34",
        Sep::Nothing,
        vec![letterhead(
            "Bestattungen Lorenz",
            "Kapellenweg 2 · 12345 Musterstadt · Telefon 02345 4411",
            &["Stadt Musterstadt", "Standesamt", HALL, TOWN],
            &["Unser Zeichen: L-0225", "Musterstadt, 28.02.2025"],
            "Beurkundung eines Sterbefalls",
            DAMEN,
            &[
                "im Auftrag der Angehörigen zeigen wir den Sterbefall von Frau Elfriede",
                "Maurer an, verstorben am 26.02.2025 im Krankenhaus Musterstadt. Bitte",
                "stellen Sie fünf Sterbeurkunden aus. Die Unterlagen liegen bei.",
            ],
            &[MFG, "Bestattungen Lorenz"],
        )],
    ));
    out
}
