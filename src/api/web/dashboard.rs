//! Übersicht: `/uebersicht`, what the Poststelle (and the administration) wants to know at a
//! glance: the review queue and its oldest item, the share decided without a person
//! (Dunkelverarbeitung), intake per channel and day, volumes per mailbox, people's corrections
//! per mailbox and week, quarantine and dead letters.
//!
//! Server-rendered, without script. Charts are inline SVG built here ([`bar_chart`],
//! [`hbar_chart`]) with presentation attributes and the classes of `desk.css` (the
//! Content-Security-Policy allows no inline style). Every chart is an image with a title and a
//! description (`role="img"`), and every chart's numbers are also in a table next to it.
//!
//! Days are UTC days (the store groups by the date part of its UTC time stamps); weeks are ISO
//! weeks (Monday to Sunday).

use super::document::{mailbox_label, time_de, unless_poststelle, waiting_de};
use super::{Chrome, Signed, error_page, render};
use crate::api::ApiState;
use crate::domain::{DocState, MailboxId};
use crate::store::stats::{DayCount, Straight};
use askama::Template;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use chrono::{Datelike, Duration, NaiveDate, Utc};
use std::collections::BTreeMap;
use std::fmt::Write;

/// Days of the intake and straight-through charts.
pub const DAYS: i64 = 14;
/// Days of the volume and quarantine figures.
pub const VOLUME_DAYS: i64 = 30;
/// Weeks of the corrections charts.
pub const WEEKS: i64 = 8;

/// The routes.
pub fn routes() -> Router<ApiState> {
    Router::new().route("/uebersicht", get(page))
}

/// A table of a chart's numbers: a caption, column heads, rows whose first cell heads the row.
#[derive(Debug, Clone, Default)]
pub struct Table {
    /// Caption.
    pub caption: String,
    /// Column heads (the first heads the row heads).
    pub head: Vec<String>,
    /// Rows.
    pub rows: Vec<Vec<String>>,
}

/// A chart as shown: its SVG (or the note that there are no data) and its numbers.
#[derive(Debug, Clone)]
pub struct ChartView {
    /// The chart's HTML (escaped here).
    pub html: String,
    /// The same numbers as a table.
    pub table: Table,
    /// No data: the table is left out.
    pub empty: bool,
}

/// One chart of the corrections of one mailbox.
#[derive(Debug, Clone)]
pub struct SmallChart {
    /// "63 Bauordnung".
    pub label: String,
    /// The chart's HTML.
    pub html: String,
}

/// The oldest item of the review queue.
#[derive(Debug, Clone)]
pub struct Oldest {
    /// Document id.
    pub id: String,
    /// File name.
    pub name: String,
    /// Arrival, as people read it.
    pub received: String,
    /// Waiting time.
    pub waiting: String,
}

#[derive(Template)]
#[template(path = "dashboard.html", config = "src/api/web/askama.toml")]
struct Page {
    chrome: Chrome,
    admin: bool,
    queue: i64,
    oldest: Option<Oldest>,
    straight_overall: String,
    straight_overall_note: String,
    straight_recent: String,
    quarantined: i64,
    dead_letters: i64,
    intake_total: String,
    intake: ChartView,
    straight: ChartView,
    volumes: ChartView,
    corrections: Vec<SmallChart>,
    corrections_table: Table,
}

async fn page(Signed(who): Signed, State(s): State<ApiState>) -> Response {
    if let Some(r) = unless_poststelle(&who) {
        return r;
    }
    match build(&s, &who).await {
        Ok(p) => render(&p),
        Err(e) => {
            tracing::error!(error = %e, "Übersicht: store failed");
            error_page(
                Some(&who),
                StatusCode::INTERNAL_SERVER_ERROR,
                "Die Daten konnten nicht gelesen werden.",
            )
        }
    }
}

async fn build(
    s: &ApiState,
    who: &crate::auth::Identity,
) -> Result<Page, crate::store::StoreError> {
    let store = &s.pipeline.store;
    let settings = &s.pipeline.settings;
    let now = Utc::now();
    let today = now.date_naive();
    let days: Vec<NaiveDate> = (0..DAYS)
        .rev()
        .map(|back| today - Duration::days(back))
        .collect();
    let first_day = days[0].and_time(chrono::NaiveTime::MIN).and_utc();
    let month_ago = now - Duration::days(VOLUME_DAYS);
    let monday = today - Duration::days(i64::from(today.weekday().num_days_from_monday()));
    let weeks: Vec<NaiveDate> = (0..WEEKS)
        .rev()
        .map(|back| monday - Duration::weeks(back))
        .collect();
    let first_week = weeks[0].and_time(chrono::NaiveTime::MIN).and_utc();

    let intake = store.intake_by_day(first_day).await?;
    let straight_days = store.straight_through(Some(first_day)).await?;
    let straight_all = store
        .straight_through(None)
        .await?
        .into_values()
        .next()
        .unwrap_or_default();
    let queue = store.review_queue().await?;
    let volumes = store.volumes_by_mailbox(month_ago).await?;
    let corrections = store.corrections_by_day(first_week).await?;
    let quarantined = store.quarantined_since(month_ago).await?;
    let dead_letters = store.count_in_state(DocState::DeadLetter).await?;

    let recent = straight_days
        .values()
        .fold(Straight::default(), |a, x| Straight {
            decided: a.decided + x.decided,
            automatic: a.automatic + x.automatic,
        });
    let label = |m: &str| match MailboxId::parse(m) {
        Some(id) => mailbox_label(settings, &id),
        None => m.to_string(),
    };
    let (corrections_charts, corrections_table) = corrections_view(&label, &weeks, &corrections);
    Ok(Page {
        chrome: Chrome::new(who, "Übersicht", "/uebersicht"),
        admin: who.is_admin(),
        queue: queue.length,
        oldest: queue.oldest.map(|w| Oldest {
            id: w.id.to_string(),
            name: w.name,
            received: time_de(&w.since),
            waiting: waiting_de(&w.since),
        }),
        straight_overall: percent_text(straight_all),
        straight_overall_note: format!(
            "{} von {} ohne Person entschieden",
            straight_all.automatic,
            documents_de(straight_all.decided)
        ),
        straight_recent: percent_text(recent),
        quarantined,
        dead_letters,
        intake_total: documents_de(intake.iter().map(|d| d.count).sum()),
        intake: intake_view(&days, &intake),
        straight: straight_view(&days, &straight_days),
        volumes: volumes_view(&label, &volumes),
        corrections: corrections_charts,
        corrections_table,
    })
}

/// "1 Dokument", "3 Dokumente".
pub fn documents_de(n: i64) -> String {
    if n == 1 {
        "1 Dokument".into()
    } else {
        format!("{n} Dokumente")
    }
}

/// The straight-through share as people read it ("87 %"), "–" without decided documents.
pub fn percent_text(s: Straight) -> String {
    match percent(s) {
        Some(p) => format!("{p:.0} %"),
        None => "–".into(),
    }
}

fn percent(s: Straight) -> Option<f64> {
    (s.decided > 0).then(|| s.automatic as f64 * 100.0 / s.decided as f64)
}

/// A channel as people read it, from a document's source.
pub fn channel_de(source: &str) -> &'static str {
    match source {
        "hot_folder" => "Scanner",
        "upload" => "Hochgeladen",
        s if s.starts_with("imap") => "E-Mail",
        _ => "Andere",
    }
}

fn day_de(d: NaiveDate) -> String {
    d.format("%d.%m.").to_string()
}

fn intake_view(days: &[NaiveDate], rows: &[DayCount]) -> ChartView {
    let mut channels = vec!["Scanner", "Hochgeladen", "E-Mail"];
    if rows.iter().any(|r| channel_de(&r.key) == "Andere") {
        channels.push("Andere");
    }
    let mut per_day: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for r in rows {
        let i = channels
            .iter()
            .position(|c| *c == channel_de(&r.key))
            .unwrap_or(0);
        per_day
            .entry(r.day.clone())
            .or_insert_with(|| vec![0; channels.len()])[i] += r.count;
    }
    let mut bars = Vec::new();
    let mut table = Table {
        caption: format!("Eingang je Tag und Kanal, letzte {DAYS} Tage"),
        head: std::iter::once("Tag")
            .chain(channels.iter().copied())
            .chain(std::iter::once("Zusammen"))
            .map(String::from)
            .collect(),
        rows: Vec::new(),
    };
    let mut total = 0;
    for d in days {
        let counts = per_day
            .get(&d.format("%Y-%m-%d").to_string())
            .cloned()
            .unwrap_or_else(|| vec![0; channels.len()]);
        let sum: i64 = counts.iter().sum();
        total += sum;
        let mut row = vec![day_de(*d)];
        row.extend(counts.iter().map(|c| c.to_string()));
        row.push(sum.to_string());
        table.rows.push(row);
        bars.push(Bar {
            label: day_de(*d),
            parts: counts.iter().map(|c| *c as f64).collect(),
            text: if sum > 0 {
                sum.to_string()
            } else {
                String::new()
            },
        });
    }
    let chart = BarChart {
        id: "eingang".into(),
        title: format!("Eingang je Tag und Kanal, letzte {DAYS} Tage"),
        summary: format!(
            "{} in {DAYS} Tagen; {}.",
            documents_de(total),
            channels
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let n: i64 = per_day.values().map(|v| v[i]).sum();
                    format!("{c} {n}")
                })
                .collect::<Vec<_>>()
                .join(", ")
        ),
        series: channels.iter().map(|c| c.to_string()).collect(),
        bars,
        scale: None,
        unit: "",
        small: false,
    };
    view(chart, table)
}

fn straight_view(days: &[NaiveDate], per_day: &BTreeMap<String, Straight>) -> ChartView {
    let mut table = Table {
        caption: format!("Dunkelverarbeitung je Tag, letzte {DAYS} Tage"),
        head: ["Tag", "Entschieden", "Ohne Person", "Anteil"]
            .map(String::from)
            .to_vec(),
        rows: Vec::new(),
    };
    let mut bars = Vec::new();
    for d in days {
        let s = per_day
            .get(&d.format("%Y-%m-%d").to_string())
            .copied()
            .unwrap_or_default();
        table.rows.push(vec![
            day_de(*d),
            s.decided.to_string(),
            s.automatic.to_string(),
            percent_text(s),
        ]);
        bars.push(Bar {
            label: day_de(*d),
            parts: vec![percent(s).unwrap_or(0.0)],
            text: if s.decided > 0 {
                percent_text(s)
            } else {
                String::new()
            },
        });
    }
    let days_with = per_day.values().filter(|s| s.decided > 0).count();
    let chart = BarChart {
        id: "dunkel".into(),
        title: format!("Anteil ohne Person entschieden je Tag, letzte {DAYS} Tage"),
        summary: format!(
            "Anteil in Prozent je Eingangstag; an {days_with} von {DAYS} Tagen wurden Dokumente entschieden."
        ),
        series: vec!["Ohne Person".into()],
        bars,
        scale: Some(100.0),
        unit: " %",
        small: false,
    };
    view(chart, table)
}

/// A mailbox id as people read it ("63 Bauordnung").
type Label<'a> = &'a dyn Fn(&str) -> String;

fn volumes_view(label: Label<'_>, rows: &[(String, i64)]) -> ChartView {
    let items: Vec<(String, f64)> = rows.iter().map(|(m, n)| (label(m), *n as f64)).collect();
    let total: i64 = rows.iter().map(|(_, n)| n).sum();
    let chart = HBarChart {
        id: "postfaecher".into(),
        title: format!("Dokumente je Postfach, letzte {VOLUME_DAYS} Tage"),
        summary: format!(
            "{} in {} Postfächern, das größte zuerst.",
            documents_de(total),
            rows.len()
        ),
        rows: items,
    };
    let table = Table {
        caption: format!("Dokumente je Postfach, letzte {VOLUME_DAYS} Tage"),
        head: ["Postfach", "Dokumente"].map(String::from).to_vec(),
        rows: rows
            .iter()
            .map(|(m, n)| vec![label(m), n.to_string()])
            .collect(),
    };
    ChartView {
        empty: chart.is_empty(),
        html: hbar_chart(&chart),
        table,
    }
}

fn corrections_view(
    label: Label<'_>,
    weeks: &[NaiveDate],
    rows: &[DayCount],
) -> (Vec<SmallChart>, Table) {
    let mut per_mailbox: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for r in rows {
        let Ok(day) = NaiveDate::parse_from_str(&r.day, "%Y-%m-%d") else {
            continue;
        };
        let Some(w) = weeks.iter().rposition(|start| *start <= day) else {
            continue;
        };
        per_mailbox
            .entry(r.key.clone())
            .or_insert_with(|| vec![0; weeks.len()])[w] += r.count;
    }
    let mut mailboxes: Vec<(String, Vec<i64>)> = per_mailbox.into_iter().collect();
    mailboxes.sort_by_key(|(m, v)| (-v.iter().sum::<i64>(), m.clone()));
    let week_de = |d: &NaiveDate| format!("KW {}", d.iso_week().week());
    let max = mailboxes
        .iter()
        .flat_map(|(_, v)| v.iter())
        .copied()
        .max()
        .unwrap_or(0);
    let scale = nice_max(max as f64);
    let mut charts = Vec::new();
    let mut table = Table {
        caption: format!("Korrekturen je Postfach und Woche, letzte {WEEKS} Wochen"),
        head: std::iter::once("Postfach".to_string())
            .chain(
                weeks
                    .iter()
                    .map(|w| format!("{} (ab {})", week_de(w), day_de(*w))),
            )
            .chain(std::iter::once("Zusammen".to_string()))
            .collect(),
        rows: Vec::new(),
    };
    for (i, (m, counts)) in mailboxes.iter().enumerate() {
        let name = label(m);
        let sum: i64 = counts.iter().sum();
        let mut row = vec![name.clone()];
        row.extend(counts.iter().map(|c| c.to_string()));
        row.push(sum.to_string());
        table.rows.push(row);
        let chart = BarChart {
            id: format!("korrekturen-{i}"),
            title: format!("Korrekturen für {name} je Kalenderwoche (KW)"),
            summary: format!(
                "{sum} in {WEEKS} Wochen: {}.",
                weeks
                    .iter()
                    .zip(counts)
                    .map(|(w, c)| format!("{}: {c}", week_de(w)))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            series: vec!["Korrekturen".into()],
            bars: weeks
                .iter()
                .zip(counts)
                .map(|(w, c)| Bar {
                    // Small: the week's number alone ("KW" is in the title).
                    label: w.iso_week().week().to_string(),
                    parts: vec![*c as f64],
                    text: if *c > 0 { c.to_string() } else { String::new() },
                })
                .collect(),
            scale: Some(scale),
            unit: "",
            small: true,
        };
        charts.push(SmallChart {
            label: name,
            html: bar_chart(&chart),
        });
    }
    (charts, table)
}

fn view(chart: BarChart, table: Table) -> ChartView {
    ChartView {
        empty: chart.is_empty(),
        html: bar_chart(&chart),
        table,
    }
}

/// One bar (a day, a week): its label below, its parts stacked from the bottom, a text above.
#[derive(Debug, Clone)]
pub struct Bar {
    /// Label below the bar.
    pub label: String,
    /// Values of the series, stacked in order.
    pub parts: Vec<f64>,
    /// Shown above the bar (empty: nothing).
    pub text: String,
}

/// A chart of vertical, stacked bars.
#[derive(Debug, Clone)]
pub struct BarChart {
    /// Prefix of the element ids (unique on the page).
    pub id: String,
    /// Title (the image's name).
    pub title: String,
    /// What it shows, in a sentence (the image's description).
    pub summary: String,
    /// Names of the stacked series (a legend is shown for more than one).
    pub series: Vec<String>,
    /// The bars.
    pub bars: Vec<Bar>,
    /// Fixed top of the scale (e.g. 100 for percentages); else a round number above the
    /// highest bar.
    pub scale: Option<f64>,
    /// Unit after the axis numbers (`" %"`).
    pub unit: &'static str,
    /// A small chart (half as wide, for one of several side by side).
    pub small: bool,
}

impl BarChart {
    /// No bar has a value or a text.
    pub fn is_empty(&self) -> bool {
        self.bars
            .iter()
            .all(|b| b.text.is_empty() && b.parts.iter().all(|v| *v <= 0.0))
    }
}

/// A chart of horizontal bars, one per row (mailboxes).
#[derive(Debug, Clone)]
pub struct HBarChart {
    /// Prefix of the element ids.
    pub id: String,
    /// Title.
    pub title: String,
    /// Description.
    pub summary: String,
    /// Label and value per row, top to bottom.
    pub rows: Vec<(String, f64)>,
}

impl HBarChart {
    /// No row has a value.
    pub fn is_empty(&self) -> bool {
        self.rows.iter().all(|(_, v)| *v <= 0.0)
    }
}

/// A bar's rectangle in the chart's coordinates.
#[derive(Debug, Clone, PartialEq)]
pub struct Rect {
    /// Left.
    pub x: f64,
    /// Top.
    pub y: f64,
    /// Width.
    pub width: f64,
    /// Height.
    pub height: f64,
    /// Index of the bar.
    pub bar: usize,
    /// Index of the series.
    pub series: usize,
}

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 240.0;
const SMALL: (f64, f64) = (320.0, 170.0);
const LEFT: f64 = 48.0;
const RIGHT: f64 = 8.0;
const TOP: f64 = 22.0;
const BOTTOM: f64 = 30.0;
const ROW: f64 = 26.0;
const LABELS: f64 = 220.0;

/// The smallest of 1, 2, 5, 10, 20, 50, ... not below `x` (at least 1).
pub fn nice_max(x: f64) -> f64 {
    let mut step = 1.0;
    loop {
        for m in [1.0, 2.0, 5.0] {
            if m * step >= x {
                return m * step;
            }
        }
        step *= 10.0;
    }
}

impl BarChart {
    /// Width and height of the drawing.
    fn size(&self) -> (f64, f64) {
        if self.small { SMALL } else { (WIDTH, HEIGHT) }
    }

    fn scale(&self) -> f64 {
        self.scale.unwrap_or_else(|| {
            let top = self
                .bars
                .iter()
                .map(|b| b.parts.iter().filter(|v| **v > 0.0).sum::<f64>())
                .fold(0.0, f64::max);
            nice_max(top)
        })
    }

    /// The rectangles of the bars' parts (parts of 0 have none); heights are proportional to
    /// the values.
    pub fn layout(&self) -> Vec<Rect> {
        let (w, h) = self.size();
        let plot_h = h - TOP - BOTTOM;
        let slot = (w - LEFT - RIGHT) / self.bars.len().max(1) as f64;
        let width = (slot * 0.7).min(56.0);
        let scale = self.scale();
        let mut out = Vec::new();
        for (i, b) in self.bars.iter().enumerate() {
            let x = LEFT + i as f64 * slot + (slot - width) / 2.0;
            let mut base = h - BOTTOM;
            for (j, v) in b.parts.iter().enumerate() {
                if *v <= 0.0 {
                    continue;
                }
                let height = (v / scale * plot_h).min(base - TOP);
                base -= height;
                out.push(Rect {
                    x,
                    y: base,
                    width,
                    height,
                    bar: i,
                    series: j,
                });
            }
        }
        out
    }
}

/// Text for HTML and SVG: `&`, `<`, `>`, `"` and `'` escaped.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A number for people: integers without a fraction, else one German decimal.
fn num_de(x: f64) -> String {
    if x.fract() == 0.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.1}").replace('.', ",")
    }
}

/// What is shown instead of an empty chart.
pub const NO_DATA: &str = "<p class=\"chart-empty\">Keine Daten für diesen Zeitraum.</p>";

fn open_svg(out: &mut String, id: &str, (width, height): (f64, f64), title: &str, summary: &str) {
    let id = esc(id);
    let _ = write!(
        out,
        "<svg class=\"chart\" viewBox=\"0 0 {width} {height}\" width=\"{width}\" height=\"{height}\" \
         role=\"img\" aria-labelledby=\"{id}-titel\" aria-describedby=\"{id}-text\" focusable=\"false\">\
         <title id=\"{id}-titel\">{}</title><desc id=\"{id}-text\">{}</desc>",
        esc(title),
        esc(summary)
    );
}

/// The SVG of a bar chart, with a legend for more than one series; for no data a note.
pub fn bar_chart(c: &BarChart) -> String {
    if c.is_empty() {
        return NO_DATA.to_string();
    }
    let mut out = String::new();
    let (width, height) = c.size();
    open_svg(&mut out, &c.id, (width, height), &c.title, &c.summary);
    let scale = c.scale();
    let plot_h = height - TOP - BOTTOM;
    let mut ticks = vec![0.0, scale];
    if (scale / 2.0).fract() == 0.0 {
        ticks.insert(1, scale / 2.0);
    }
    for t in ticks {
        let y = height - BOTTOM - t / scale * plot_h;
        let _ = write!(
            out,
            "<line class=\"{}\" x1=\"{LEFT}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\"></line>\
             <text class=\"tick\" x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            if t == 0.0 { "axis" } else { "grid" },
            width - RIGHT,
            LEFT - 6.0,
            y + 4.0,
            esc(&format!("{}{}", num_de(t), c.unit))
        );
    }
    let rects = c.layout();
    for r in &rects {
        let bar = &c.bars[r.bar];
        let name = c.series.get(r.series).map(String::as_str).unwrap_or("");
        let _ = write!(
            out,
            "<rect class=\"bar s{}\" x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\">\
             <title>{}: {} {}{}</title></rect>",
            r.series % 4,
            r.x,
            r.y,
            r.width,
            r.height,
            esc(&bar.label),
            esc(name),
            num_de(bar.parts[r.series]),
            esc(c.unit)
        );
    }
    let slot = (width - LEFT - RIGHT) / c.bars.len().max(1) as f64;
    for (i, b) in c.bars.iter().enumerate() {
        let cx = LEFT + (i as f64 + 0.5) * slot;
        let top = rects
            .iter()
            .filter(|r| r.bar == i)
            .map(|r| r.y)
            .fold(height - BOTTOM, f64::min);
        if !b.text.is_empty() {
            let _ = write!(
                out,
                "<text class=\"value\" x=\"{cx:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
                top - 5.0,
                esc(&b.text)
            );
        }
        let _ = write!(
            out,
            "<text class=\"tick\" x=\"{cx:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            height - BOTTOM + 18.0,
            esc(&b.label)
        );
    }
    out.push_str("</svg>");
    if c.series.len() > 1 {
        out.push_str("<ul class=\"legend\">");
        for (j, s) in c.series.iter().enumerate() {
            let _ = write!(
                out,
                "<li><span class=\"swatch s{}\"></span>{}</li>",
                j % 4,
                esc(s)
            );
        }
        out.push_str("</ul>");
    }
    out
}

/// The SVG of a horizontal bar chart (labels left, values after the bars); for no data a note.
pub fn hbar_chart(c: &HBarChart) -> String {
    if c.is_empty() {
        return NO_DATA.to_string();
    }
    let height = c.rows.len() as f64 * ROW + 8.0;
    let mut out = String::new();
    open_svg(&mut out, &c.id, (WIDTH, height), &c.title, &c.summary);
    let top = c.rows.iter().map(|(_, v)| *v).fold(0.0, f64::max);
    let scale = nice_max(top);
    let room = WIDTH - LABELS - 56.0;
    for (i, (label, v)) in c.rows.iter().enumerate() {
        let y = 4.0 + i as f64 * ROW;
        let w = (v.max(0.0) / scale * room).max(if *v > 0.0 { 1.0 } else { 0.0 });
        let short: String = if label.chars().count() > 30 {
            label.chars().take(29).chain(std::iter::once('…')).collect()
        } else {
            label.clone()
        };
        let _ = write!(
            out,
            "<text class=\"tick\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\
             <rect class=\"bar s0\" x=\"{LABELS}\" y=\"{:.1}\" width=\"{w:.1}\" height=\"{:.1}\">\
             <title>{}: {}</title></rect>\
             <text class=\"value\" x=\"{:.1}\" y=\"{:.1}\">{}</text>",
            LABELS - 8.0,
            y + 16.0,
            esc(&short),
            y + 3.0,
            ROW - 8.0,
            esc(label),
            num_de(*v),
            LABELS + w + 6.0,
            y + 16.0,
            num_de(*v)
        );
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chart(values: &[f64]) -> BarChart {
        BarChart {
            id: "t".into(),
            title: "Titel".into(),
            summary: "Beschreibung".into(),
            series: vec!["A".into()],
            bars: values
                .iter()
                .enumerate()
                .map(|(i, v)| Bar {
                    label: format!("{i}"),
                    parts: vec![*v],
                    text: if *v > 0.0 { num_de(*v) } else { String::new() },
                })
                .collect(),
            scale: None,
            unit: "",
            small: false,
        }
    }

    #[test]
    fn bar_heights_are_proportional() {
        let c = chart(&[2.0, 4.0, 0.0, 1.0]);
        let rects = c.layout();
        assert_eq!(rects.len(), 3, "no rectangle for a zero");
        let h = |bar: usize| rects.iter().find(|r| r.bar == bar).expect("rect").height;
        assert!((h(1) - 2.0 * h(0)).abs() < 1e-9);
        assert!((h(0) - 2.0 * h(3)).abs() < 1e-9);
        // The scale is a round number above the highest bar, all bars stand on one line.
        assert_eq!(c.scale(), 5.0);
        for r in &rects {
            assert!((r.y + r.height - (HEIGHT - BOTTOM)).abs() < 1e-9);
        }
        assert!(rects[0].x < rects[1].x);
    }

    #[test]
    fn stacked_parts_add_up_and_a_fixed_scale_holds() {
        let mut c = chart(&[]);
        c.series = vec!["A".into(), "B".into()];
        c.bars = vec![Bar {
            label: "x".into(),
            parts: vec![30.0, 20.0],
            text: "50 %".into(),
        }];
        c.scale = Some(100.0);
        let r = c.layout();
        let plot = HEIGHT - TOP - BOTTOM;
        assert!((r[0].height - 0.3 * plot).abs() < 1e-9);
        assert!((r[1].height - 0.2 * plot).abs() < 1e-9);
        assert!(
            (r[1].y + r[1].height - r[0].y).abs() < 1e-9,
            "B on top of A"
        );
        let svg = bar_chart(&c);
        assert!(svg.contains("class=\"legend\""), "two series: a legend");
        assert!(
            svg.contains(">100</text>") && svg.contains(">50</text>"),
            "{svg}"
        );
    }

    #[test]
    fn empty_data_says_so() {
        assert_eq!(bar_chart(&chart(&[])), NO_DATA);
        assert_eq!(bar_chart(&chart(&[0.0, 0.0])), NO_DATA);
        assert!(NO_DATA.contains("Keine Daten"));
        let h = HBarChart {
            id: "h".into(),
            title: "t".into(),
            summary: "s".into(),
            rows: vec![],
        };
        assert_eq!(hbar_chart(&h), NO_DATA);
        // A day at 0 % is a value, not missing data.
        let mut zero = chart(&[0.0]);
        zero.bars[0].text = "0 %".into();
        assert!(bar_chart(&zero).starts_with("<svg"));
    }

    #[test]
    fn charts_are_named_images() {
        let svg = bar_chart(&chart(&[1.0]));
        assert!(svg.starts_with("<svg class=\"chart\""));
        assert!(svg.contains("role=\"img\""));
        assert!(svg.contains("aria-labelledby=\"t-titel\""));
        assert!(svg.contains("<title id=\"t-titel\">Titel</title>"));
        assert!(svg.contains("<desc id=\"t-text\">Beschreibung</desc>"));
        assert!(!svg.contains("style"), "no inline styles under the CSP");
        assert!(svg.ends_with("</svg>"), "one series: no legend");
    }

    #[test]
    fn text_is_escaped() {
        let mut c = chart(&[3.0]);
        c.title = "<script>alert(1)</script>".into();
        c.bars[0].label = "a&b\"".into();
        c.series = vec!["<b>".into(), "x'".into()];
        c.bars[0].parts = vec![1.0, 2.0];
        let svg = bar_chart(&c);
        assert!(!svg.contains("<script>") && !svg.contains("<b>"), "{svg}");
        assert!(svg.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(svg.contains("a&amp;b&quot;"));
        assert!(svg.contains("x&#39;"));
        let h = HBarChart {
            id: "h\"".into(),
            title: "t".into(),
            summary: "s".into(),
            rows: vec![("63 <Bauordnung>".into(), 2.0)],
        };
        let svg = hbar_chart(&h);
        assert!(svg.contains("63 &lt;Bauordnung&gt;") && !svg.contains("<Bauordnung>"));
        assert!(svg.contains("id=\"h&quot;-titel\""));
    }

    #[test]
    fn horizontal_bars_are_proportional_and_long_labels_shortened() {
        let h = HBarChart {
            id: "h".into(),
            title: "t".into(),
            summary: "s".into(),
            rows: vec![
                (
                    "Ein sehr langer Name eines Postfachs der Stadt".into(),
                    10.0,
                ),
                ("63 Bauordnung".into(), 5.0),
            ],
        };
        let svg = hbar_chart(&h);
        let widths: Vec<f64> = svg
            .match_indices("width=\"")
            .skip(1)
            .map(|(i, m)| {
                let rest = &svg[i + m.len()..];
                rest[..rest.find('"').expect("quote")]
                    .parse()
                    .expect("number")
            })
            .collect();
        assert_eq!(widths.len(), 2, "{svg}");
        assert!((widths[0] - 2.0 * widths[1]).abs() < 0.2, "{widths:?}");
        assert!(svg.contains("Ein sehr langer Name eines Po…</text>"));
        assert!(svg.contains("<title>Ein sehr langer Name eines Postfachs der Stadt: 10</title>"));
    }

    #[test]
    fn figures_read_as_german() {
        assert_eq!(documents_de(1), "1 Dokument");
        assert_eq!(documents_de(0), "0 Dokumente");
        assert_eq!(
            percent_text(Straight {
                decided: 3,
                automatic: 2
            }),
            "67 %"
        );
        assert_eq!(percent_text(Straight::default()), "–");
        assert_eq!(channel_de("imap:rathaus"), "E-Mail");
        assert_eq!(channel_de("hot_folder"), "Scanner");
        assert_eq!(channel_de("api"), "Andere");
        assert_eq!(nice_max(0.0), 1.0);
        assert_eq!(nice_max(3.0), 5.0);
        assert_eq!(nice_max(11.0), 20.0);
        assert_eq!(nice_max(100.0), 100.0);
    }

    #[test]
    fn intake_counts_channels_per_day() {
        let days = [
            NaiveDate::from_ymd_opt(2026, 3, 1).expect("day"),
            NaiveDate::from_ymd_opt(2026, 3, 2).expect("day"),
        ];
        let rows = [
            DayCount {
                day: "2026-03-02".into(),
                key: "imap:a".into(),
                count: 2,
            },
            DayCount {
                day: "2026-03-02".into(),
                key: "hot_folder".into(),
                count: 1,
            },
        ];
        let v = intake_view(&days, &rows);
        assert!(!v.empty);
        assert_eq!(
            v.table.head,
            ["Tag", "Scanner", "Hochgeladen", "E-Mail", "Zusammen"]
        );
        assert_eq!(v.table.rows[0], ["01.03.", "0", "0", "0", "0"]);
        assert_eq!(v.table.rows[1], ["02.03.", "1", "0", "2", "3"]);
        assert!(
            v.html
                .contains("3 Dokumente in 14 Tagen; Scanner 1, Hochgeladen 0, E-Mail 2.")
        );
    }

    #[test]
    fn corrections_fall_into_their_weeks() {
        let monday = NaiveDate::from_ymd_opt(2026, 3, 2).expect("day");
        let weeks = [monday - Duration::weeks(1), monday];
        let rows = [
            DayCount {
                day: "2026-02-24".into(),
                key: "63".into(),
                count: 1,
            },
            DayCount {
                day: "2026-03-08".into(),
                key: "63".into(),
                count: 2,
            },
            DayCount {
                day: "2026-03-03".into(),
                key: "99".into(),
                count: 4,
            },
        ];
        let label = |m: &str| {
            if m == "63" {
                "63 Bauordnung".to_string()
            } else {
                m.to_string()
            }
        };
        let (charts, table) = corrections_view(&label, &weeks, &rows);
        assert_eq!(charts.len(), 2);
        assert_eq!(
            table.rows[0][0], "99",
            "most corrections first; unknown ids as they are"
        );
        assert_eq!(table.rows[1][1..], ["1", "2", "3"]);
        assert!(table.head[1].starts_with("KW 9"));
    }
}
