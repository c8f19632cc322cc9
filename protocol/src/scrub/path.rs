//! Where a value sits in an event while it is scrubbed: a chain of links from the value up to
//! the event, on the stack (no allocation per value).

use super::selector::{Automaton, States};

/// Which part of Sentry's event schema a value is, for `$frame`, `$error`, ... selectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Other,
    Event,
    ExceptionRoot,
    ExceptionValues,
    Error,
    Stacktrace,
    Frames,
    Frame,
    ThreadsRoot,
    ThreadValues,
    Thread,
    Http,
    User,
    Logentry,
    BreadcrumbsRoot,
    BreadcrumbValues,
    Breadcrumb,
    // the last: `Kind::COUNT` counts up to it
    Sdk,
}

impl Kind {
    /// How many kinds there are.
    pub(crate) const COUNT: usize = Self::Sdk as usize + 1;

    /// The kind of the member `key` (or an element, for `None`) of a value of this kind.
    pub(crate) fn child(self, key: Option<&str>) -> Self {
        if self == Self::Other {
            return Self::Other;
        }
        match (self, key) {
            (Self::Event, Some("exception")) => Self::ExceptionRoot,
            (Self::Event, Some("threads")) => Self::ThreadsRoot,
            (Self::Event, Some("breadcrumbs")) => Self::BreadcrumbsRoot,
            (Self::Event, Some("stacktrace")) => Self::Stacktrace,
            (Self::Event, Some("request")) => Self::Http,
            (Self::Event, Some("user")) => Self::User,
            (Self::Event, Some("logentry")) => Self::Logentry,
            (Self::Event, Some("sdk")) => Self::Sdk,
            (Self::ExceptionRoot, Some("values")) => Self::ExceptionValues,
            (Self::ExceptionValues, None) => Self::Error,
            (Self::ThreadsRoot, Some("values")) => Self::ThreadValues,
            (Self::ThreadValues, None) => Self::Thread,
            (Self::BreadcrumbsRoot, Some("values")) => Self::BreadcrumbValues,
            (Self::BreadcrumbValues, None) => Self::Breadcrumb,
            (Self::Error | Self::Thread, Some("stacktrace" | "raw_stacktrace")) => Self::Stacktrace,
            (Self::Stacktrace, Some("frames")) => Self::Frames,
            (Self::Frames, None) => Self::Frame,
            _ => Self::Other,
        }
    }
}

/// The JSON type of a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ValueType {
    Null,
    Boolean,
    Number,
    String,
    Array,
    Object,
}

impl ValueType {
    pub(crate) fn of(value: &serde_json::Value) -> Self {
        use serde_json::Value;
        match value {
            Value::Null => Self::Null,
            Value::Bool(_) => Self::Boolean,
            Value::Number(_) => Self::Number,
            Value::String(_) => Self::String,
            Value::Array(_) => Self::Array,
            Value::Object(_) => Self::Object,
        }
    }
}

/// How a value is reached from its parent.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Step<'a> {
    Root,
    /// A member of an object.
    Key(&'a str),
    /// An element of an array.
    Index(usize),
    /// The value of the `[name, value]` pair at this index of a pair list (headers, cookies,
    /// tags sent as pairs): addressed by its name, like an object member.
    Pair(usize, &'a str),
    /// A `name=value` piece of a query or cookie string: has no place of its own in `_meta`.
    Piece(&'a str),
}

#[derive(Debug)]
pub(crate) struct Path<'a> {
    pub(crate) parent: Option<&'a Path<'a>>,
    pub(crate) kind: Kind,
    pub(crate) step: Step<'a>,
    /// The scrubber's automaton states at this value (see [`Automaton`]).
    pub(crate) states: States,
    /// Levels below the event (a top-level member is 1).
    pub(crate) depth: u32,
}

impl<'a> Path<'a> {
    pub(crate) fn root(automaton: &Automaton) -> Self {
        Self {
            parent: None,
            kind: Kind::Event,
            step: Step::Root,
            states: automaton.root(),
            depth: 0,
        }
    }

    /// The path of a member or element (of type `ty`) of this value.
    pub(crate) fn child(
        &'a self,
        step: Step<'a>,
        automaton: &Automaton,
        ty: ValueType,
    ) -> Path<'a> {
        let member = match step {
            Step::Key(k) => Some(k),
            _ => None,
        };
        let kind = self.kind.child(member);
        let key = match step {
            Step::Key(k) | Step::Pair(_, k) | Step::Piece(k) => Some(k),
            Step::Root | Step::Index(_) => None,
        };
        Path {
            parent: Some(self),
            kind,
            step,
            states: automaton.step(&self.states, key, kind, false, ty),
            depth: self.depth + 1,
        }
    }

    /// The path of element `i`, whose states are known: those of an earlier element of the
    /// same type (an element has no key, so its states follow from its type alone).
    pub(crate) fn element(&'a self, i: usize, states: States) -> Path<'a> {
        Path {
            parent: Some(self),
            kind: self.kind.child(None),
            step: Step::Index(i),
            states,
            depth: self.depth + 1,
        }
    }

    /// The name this value is known by: its key, pair name or piece name.
    pub(crate) fn key(&self) -> Option<&'a str> {
        match self.step {
            Step::Key(k) | Step::Pair(_, k) | Step::Piece(k) => Some(k),
            Step::Root | Step::Index(_) => None,
        }
    }

    /// The path of this value in `_meta` (member names and element indices from the top).
    /// A piece of a string has none: its remarks go to the string.
    pub(crate) fn meta_path(&self) -> Option<Vec<String>> {
        let mut out = Vec::new();
        let mut at = Some(self);
        while let Some(node) = at {
            match node.step {
                Step::Root => {}
                Step::Key(k) => out.push(k.to_owned()),
                Step::Index(i) => out.push(i.to_string()),
                Step::Pair(i, _) => {
                    out.push("1".to_owned());
                    out.push(i.to_string());
                }
                Step::Piece(_) => return None,
            }
            at = node.parent;
        }
        out.reverse();
        Some(out)
    }
}
