//! `printEvent`: core/v1 Events (and events.k8s.io/v1 field names).

use jiff::Timestamp;
use serde_json::{json, Value};

use super::access::{at, int_at, name, opt_int, opt_str, str_at, time_at, trim_space};
use super::duration::{parse_time, since};
use super::{col, wide, Col, Printer, Row, NAME_DESC};

pub(crate) static EVENT: Printer = Printer {
    kinds: &["Event"],
    columns: &[
        col(
            "Last Seen",
            "string",
            "The time at which the most recent occurrence of this event was recorded.",
        ),
        col("Type", "string", "Type of this event (Normal, Warning)."),
        col(
            "Reason",
            "string",
            "A short, machine understandable string that gives the reason for this event.",
        ),
        col("Object", "string", "The object that this event is about."),
        wide(
            "Subobject",
            "string",
            "The field of the object this event is about.",
        ),
        wide("Source", "string", "The component reporting this event."),
        col(
            "Message",
            "string",
            "A human-readable description of the status of this operation.",
        ),
        wide(
            "First Seen",
            "string",
            "The time at which the event was first recorded.",
        ),
        wide(
            "Count",
            "string",
            "The number of times this event has occurred.",
        ),
        Col {
            name: "Name",
            ty: "string",
            format: "name",
            desc: NAME_DESC,
            priority: 1,
        },
    ],
    row: event_row,
};

/// A core/v1 field, else its events.k8s.io/v1 counterpart.
fn either<'a>(e: &'a Value, core: &[&str], events: &[&str]) -> Option<&'a Value> {
    at(e, core).or_else(|| at(e, events))
}

fn event_row(e: &Value, now: Timestamp) -> Row {
    let time = |core: &[&str], events: &[&str]| {
        either(e, core, events)
            .and_then(Value::as_str)
            .and_then(parse_time)
    };
    let first = time(&["firstTimestamp"], &["deprecatedFirstTimestamp"]);
    let first_seen = match first {
        Some(t) => since(Some(t), now),
        None => since(time_at(e, &["eventTime"]), now),
    };
    let mut last_seen = match time(&["lastTimestamp"], &["deprecatedLastTimestamp"]) {
        Some(t) => since(Some(t), now),
        None => first_seen.clone(),
    };
    let mut count = opt_int(e, &["count"])
        .or_else(|| opt_int(e, &["deprecatedCount"]))
        .unwrap_or(0);
    if let Some(series) = at(e, &["series"]) {
        last_seen = since(time_at(series, &["lastObservedTime"]), now);
        count = int_at(series, &["count"]);
    } else if count == 0 {
        // Singleton events don't have a count set in the new API.
        count = 1;
    }

    let regarding = either(e, &["involvedObject"], &["regarding"]).unwrap_or(&Value::Null);
    let kind = str_at(regarding, &["kind"]).to_lowercase();
    let obj_name = str_at(regarding, &["name"]);
    let target = if obj_name.is_empty() {
        kind
    } else {
        format!("{kind}/{obj_name}")
    };

    let source = either(e, &["source"], &["deprecatedSource"]).unwrap_or(&Value::Null);
    let first_non_empty = |a: &str, b: &str| {
        if a.is_empty() {
            b.to_string()
        } else {
            a.to_string()
        }
    };
    let component = first_non_empty(
        str_at(source, &["component"]),
        opt_str(e, &["reportingComponent"]).unwrap_or(str_at(e, &["reportingController"])),
    );
    let instance = first_non_empty(str_at(source, &["host"]), str_at(e, &["reportingInstance"]));
    let source_text = if instance.is_empty() {
        component
    } else {
        format!("{component}, {instance}")
    };
    let message = either(e, &["message"], &["note"])
        .and_then(Value::as_str)
        .unwrap_or("");

    vec![
        json!(last_seen),
        json!(str_at(e, &["type"])),
        json!(str_at(e, &["reason"])),
        json!(target),
        json!(str_at(regarding, &["fieldPath"])),
        json!(source_text),
        json!(trim_space(message)),
        json!(first_seen),
        json!(count),
        json!(name(e)),
    ]
    .into()
}
