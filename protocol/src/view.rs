//! A read-only view of the stack traces of a normalized event, shared by column extraction
//! and grouping: which exception is the main one, which frames belong to it, and which
//! frames count as in-app.

use serde_json::{Map, Value};

pub(crate) struct EventView<'a> {
    /// The exceptions, oldest (the innermost cause) first, as sent.
    pub(crate) exceptions: Vec<&'a Map<String, Value>>,
    /// Frames for the main exception when it has none, or for an event without exception:
    /// the top-level `stacktrace`, else the crashed thread's.
    pub(crate) fallback_frames: Option<&'a [Value]>,
    /// Whether any frame says whether it is in-app. If none does, all frames count as in-app
    /// (Sentry's fallback); otherwise frames without `in_app: true` are system frames.
    has_in_app_info: bool,
}

impl<'a> EventView<'a> {
    pub(crate) fn new(root: &'a Map<String, Value>) -> Self {
        let exceptions: Vec<&Map<String, Value>> = root
            .get("exception")
            .and_then(|e| e.get("values"))
            .and_then(Value::as_array)
            .map(|values| values.iter().filter_map(Value::as_object).collect())
            .unwrap_or_default();
        let fallback_frames = root
            .get("stacktrace")
            .and_then(stacktrace_frames)
            .or_else(|| crashed_thread_frames(root));
        let mut view = Self {
            exceptions,
            fallback_frames,
            has_in_app_info: false,
        };
        let has_in_app_info = view
            .all_frames()
            .any(|frame| frame.get("in_app").is_some_and(Value::is_boolean));
        view.has_in_app_info = has_in_app_info;
        view
    }

    /// The main exception: the last one (the one that was raised last).
    pub(crate) fn main_exception(&self) -> Option<&'a Map<String, Value>> {
        self.exceptions.last().copied()
    }

    /// The frames of the exception at `index`, oldest call first, crash site last. The main
    /// exception falls back to [`Self::fallback_frames`].
    pub(crate) fn exception_frames(&self, index: usize) -> Option<&'a [Value]> {
        let exc = self.exceptions.get(index)?;
        exc.get("stacktrace")
            .and_then(stacktrace_frames)
            .or_else(|| (index + 1 == self.exceptions.len()).then_some(self.fallback_frames?))
    }

    /// The frames that describe the event: the main exception's, else the fallback ones.
    pub(crate) fn primary_frames(&self) -> Option<&'a [Value]> {
        if self.exceptions.is_empty() {
            self.fallback_frames
        } else {
            self.exception_frames(self.exceptions.len() - 1)
        }
    }

    fn all_frames(&self) -> impl Iterator<Item = &'a Map<String, Value>> + '_ {
        (0..self.exceptions.len())
            .filter_map(|i| self.exception_frames(i))
            .chain(
                self.exceptions
                    .is_empty()
                    .then_some(self.fallback_frames)
                    .flatten(),
            )
            .flatten()
            .filter_map(Value::as_object)
    }

    pub(crate) fn is_in_app(&self, frame: &Map<String, Value>) -> bool {
        !self.has_in_app_info || frame.get("in_app") == Some(&Value::Bool(true))
    }

    /// Whether any frame of the event counts as in-app.
    pub(crate) fn any_in_app(&self) -> bool {
        self.all_frames().any(|f| self.is_in_app(f))
    }
}

fn stacktrace_frames(stacktrace: &Value) -> Option<&[Value]> {
    stacktrace
        .get("frames")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .filter(|frames| !frames.is_empty())
}

fn crashed_thread_frames(root: &Map<String, Value>) -> Option<&[Value]> {
    root.get("threads")?
        .get("values")?
        .as_array()?
        .iter()
        .find(|t| t.get("crashed") == Some(&Value::Bool(true)))?
        .get("stacktrace")
        .and_then(stacktrace_frames)
}
