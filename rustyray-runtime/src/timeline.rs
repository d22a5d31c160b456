//! The timeline: task attempts as Chrome trace events (the format `ray
//! timeline` writes), to open in Perfetto or `chrome://tracing`.
//!
//! Each attempt is a slice on a lane. Plain (CPU) attempts share the "cpu
//! slot" lanes, async ones the "async" lanes, and each actor has lanes of its
//! own; within a group an attempt takes the first lane free when it starts,
//! so there are as many CPU lanes as attempts ever ran at once (the runtime's
//! CPUs, plus attempts that ran while others waited). A flow arrow joins the
//! task that produced an object to each task that took it as an argument.
//! Arguments appear only for calls made with `record_args(true)`.

use std::collections::HashMap;
use std::time::Instant;

use rustyray_core::{ActorId, TaskId, TaskKind};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::state::{AttemptOutcome, Record};

/// The lane group an attempt runs in.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Group {
    Cpu,
    Async,
    Actor(ActorId),
}

#[derive(Serialize)]
struct TraceEvent {
    name: String,
    #[serde(skip_serializing_if = "str::is_empty")]
    cat: &'static str,
    ph: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    ts: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dur: Option<f64>,
    pid: u32,
    tid: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bp: Option<&'static str>,
    #[serde(skip_serializing_if = "Map::is_empty")]
    args: Map<String, Value>,
}

#[derive(Serialize)]
struct Trace {
    #[serde(rename = "traceEvents")]
    trace_events: Vec<TraceEvent>,
    #[serde(rename = "displayTimeUnit")]
    display_time_unit: &'static str,
}

const PID: u32 = 1;

fn metadata(name: &'static str, tid: u32, args: Map<String, Value>) -> TraceEvent {
    TraceEvent { name: name.into(), cat: "", ph: "M", ts: None, dur: None, pid: PID, tid, id: None, bp: None, args }
}

fn one(key: &str, value: impl Into<Value>) -> Map<String, Value> {
    let mut map = Map::new();
    map.insert(key.into(), value.into());
    map
}

/// A slice: where one attempt ran, in microseconds since `origin`.
struct Slice<'a> {
    record: &'a Record,
    attempt: usize,
    group: Group,
    start: f64,
    end: f64,
    tid: u32,
}

/// The tasks a timeline shows, copied out of the task manager, so that the
/// JSON is built without holding the manager's lock.
pub(crate) struct Snapshot {
    pub(crate) records: Vec<Record>,
    /// Each actor's type name.
    pub(crate) classes: rustc_hash::FxHashMap<ActorId, &'static str>,
    pub(crate) origin: Instant,
    pub(crate) now: Instant,
}

impl Snapshot {
    /// The Chrome trace-event JSON of the snapshot.
    pub(crate) fn render(&self) -> String {
        build(&self.records, self.origin, self.now, |actor| self.classes.get(&actor).copied())
    }
}

/// Builds the Chrome trace of `records`, timed from `origin`; `now` ends the
/// slices of attempts still running; `class` names an actor's type.
pub(crate) fn build(
    records: &[Record],
    origin: Instant,
    now: Instant,
    class: impl Fn(ActorId) -> Option<&'static str>,
) -> String {
    let micros = |at: Instant| at.saturating_duration_since(origin).as_secs_f64() * 1e6;
    let mut slices: Vec<Slice<'_>> = Vec::new();
    for record in records {
        let group = match record.kind {
            TaskKind::Normal if record.plain => Group::Cpu,
            TaskKind::Normal => Group::Async,
            TaskKind::ActorCreation { actor } | TaskKind::ActorMethod { actor } => Group::Actor(actor),
        };
        for (attempt, a) in record.attempts.iter().enumerate() {
            let group = if a.inline { Group::Cpu } else { group };
            let (start, end) = (micros(a.started), micros(a.ended.unwrap_or(now)));
            slices.push(Slice { record, attempt, group, start, end: end.max(start), tid: 0 });
        }
    }
    slices.sort_by(|a, b| a.start.total_cmp(&b.start));

    // Interval partitioning per group: the first lane free at the start.
    let mut lanes: HashMap<Group, Vec<(f64, u32)>> = HashMap::new();
    let mut names: Vec<(Group, usize, u32)> = Vec::new();
    let mut next_tid = 1;
    for slice in &mut slices {
        let group_lanes = lanes.entry(slice.group).or_default();
        let lane = match group_lanes.iter().position(|(free_at, _)| *free_at <= slice.start) {
            Some(lane) => lane,
            None => {
                group_lanes.push((0.0, next_tid));
                names.push((slice.group, group_lanes.len() - 1, next_tid));
                next_tid += 1;
                group_lanes.len() - 1
            }
        };
        group_lanes[lane].0 = slice.end;
        slice.tid = group_lanes[lane].1;
    }

    let mut events = vec![metadata("process_name", 0, one("name", "rustyray"))];
    names.sort();
    for (sort_index, (group, lane, tid)) in names.iter().enumerate() {
        let name = match group {
            Group::Cpu => format!("cpu slot {lane}"),
            Group::Async => format!("async {lane}"),
            Group::Actor(actor) => format!("{} {actor} [{lane}]", class(*actor).unwrap_or("actor")),
        };
        events.push(metadata("thread_name", *tid, one("name", name)));
        events.push(metadata("thread_sort_index", *tid, one("sort_index", sort_index)));
    }

    // Where each task's output was written: the end of its last attempt.
    let mut produced: HashMap<TaskId, (u32, f64, f64)> = HashMap::new();
    for slice in &slices {
        if slice.attempt + 1 == slice.record.attempts.len() {
            produced.insert(slice.record.id, (slice.tid, slice.start, slice.end));
        }
    }

    let mut flow_id = 0;
    for slice in &slices {
        let (record, attempt) = (slice.record, &slice.record.attempts[slice.attempt]);
        let mut args = Map::new();
        args.insert("task".into(), record.id.as_u64().into());
        args.insert("function".into(), record.function.name().into());
        args.insert("attempt".into(), attempt.number.into());
        let outcome = match &attempt.outcome {
            AttemptOutcome::Running => "running".to_string(),
            AttemptOutcome::Succeeded => "succeeded".to_string(),
            AttemptOutcome::Cancelled => "cancelled".to_string(),
            AttemptOutcome::Failed(error) => format!("failed: {error}"),
        };
        args.insert("outcome".into(), outcome.into());
        if let Some(parent) = record.parent {
            args.insert("parent".into(), parent.as_u64().into());
        }
        if let Some(recorded) = &record.args {
            args.insert("args".into(), recorded.as_ref().into());
        }
        let name = record.name.as_deref().unwrap_or(record.function.name()).to_string();
        events.push(TraceEvent {
            name,
            cat: "task",
            ph: "X",
            ts: Some(slice.start),
            dur: Some(slice.end - slice.start),
            pid: PID,
            tid: slice.tid,
            id: None,
            bp: None,
            args,
        });
        if slice.attempt != 0 {
            continue;
        }
        for input in record.inputs.iter() {
            let Some(&(tid, start, end)) = produced.get(input) else { continue };
            flow_id += 1;
            // Each end sits inside its slice, so viewers bind the arrow to it.
            let from = end - ((end - start) / 2.0).min(0.5);
            let to = slice.start + ((slice.end - slice.start) / 2.0).min(0.5);
            for (ph, tid, ts, bp) in [("s", tid, from, None), ("f", slice.tid, to, Some("e"))] {
                events.push(TraceEvent {
                    name: "dependency".into(),
                    cat: "dependency",
                    ph,
                    ts: Some(ts),
                    dur: None,
                    pid: PID,
                    tid,
                    id: Some(flow_id),
                    bp,
                    args: Map::new(),
                });
            }
        }
    }
    let trace = Trace { trace_events: events, display_time_unit: "ms" };
    // Serializing plain maps, strings and numbers cannot fail.
    serde_json::to_string(&trace).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rustyray_core::FunctionId;

    use super::*;
    use crate::state::{AttemptRecord, Attempts, TaskState};

    fn record(id: u64, plain: bool, start_ms: u64, end_ms: u64, origin: Instant, inputs: &[u64]) -> Record {
        let attempts: Attempts = smallvec::smallvec![AttemptRecord {
            number: 1,
            started: origin + Duration::from_millis(start_ms),
            ended: Some(origin + Duration::from_millis(end_ms)),
            outcome: AttemptOutcome::Succeeded,
            inline: false,
        }];
        Record {
            id: TaskId::from_u64(id),
            name: None,
            function: FunctionId::new(&"t::f"),
            kind: TaskKind::Normal,
            state: TaskState::Succeeded,
            parent: None,
            priority: 0,
            queue: None,
            submitted: origin,
            finished: Some(origin + Duration::from_millis(end_ms)),
            attempts,
            error: None,
            inputs: inputs.iter().map(|i| TaskId::from_u64(*i)).collect(),
            plain,
            args: None,
        }
    }

    #[test]
    fn overlapping_attempts_get_lanes_of_their_own_and_arrows_join_dependencies() {
        let origin = Instant::now();
        let records = [
            record(1, true, 0, 10, origin, &[]),
            record(2, true, 5, 15, origin, &[]),
            record(3, true, 20, 30, origin, &[1, 2]),
            record(4, false, 0, 1, origin, &[]),
        ];
        let json: Value = serde_json::from_str(&build(&records, origin, origin, |_| None)).unwrap_or_default();
        let events = json["traceEvents"].as_array().cloned().unwrap_or_default();
        let slices: Vec<&Value> = events.iter().filter(|e| e["ph"] == "X").collect();
        assert_eq!(slices.len(), 4);
        let tid = |task: u64| slices.iter().find(|s| s["args"]["task"] == task).map(|s| s["tid"].clone());
        assert_ne!(tid(1), tid(2), "overlapping CPU attempts share no lane");
        assert!(tid(3) == tid(1) || tid(3) == tid(2), "a later attempt reuses a free lane");
        assert_ne!(tid(4), tid(1), "async attempts have lanes of their own");
        let lanes: Vec<&Value> = events.iter().filter(|e| e["name"] == "thread_name").collect();
        assert_eq!(lanes.len(), 3);
        let flows = events.iter().filter(|e| e["cat"] == "dependency").count();
        assert_eq!(flows, 4, "two arrows, each a start and a finish");
    }
}
