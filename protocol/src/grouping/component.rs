//! The grouping component tree: what each part of an event contributes to its hash, and why a
//! part does not (the hint). Shaped like Sentry's, so the hashes and the "why grouped" view match.

use std::borrow::Cow;

use md5::{Digest, Md5};
use serde::Serialize;

/// Why a component does (not) contribute: almost always one of a few fixed sentences, so kept
/// without an allocation unless it is built from values.
pub type Hint = Cow<'static, str>;

/// One node of the tree: a named component whose values are strings or further components.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Component {
    /// Sentry's component id: `exception`, `stacktrace`, `frame`, `function`, `message`, ...
    pub id: &'static str,
    /// Whether the values count for the hash.
    pub contributes: bool,
    /// Why the component does (not) contribute, or what was changed in its values.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<Hint>,
    pub values: Vec<Node>,
    /// Frames only: whether the frame is in-app (after the stack trace rules).
    #[serde(skip)]
    pub(crate) in_app: bool,
}

/// A value of a component.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Node {
    Value(String),
    Component(Component),
}

impl Component {
    /// A component of values; it contributes when any value does (as in Sentry: a plain value
    /// always does, a child component when it contributes; no values, no contribution).
    pub(crate) fn new(id: &'static str, values: Vec<Node>) -> Self {
        let contributes = calculate_contributes(&values);
        Self {
            id,
            contributes,
            hint: None,
            values,
            in_app: false,
        }
    }

    /// A component without values (it does not contribute).
    pub(crate) fn empty(id: &'static str) -> Self {
        Self::new(id, Vec::new())
    }

    /// A component of one string value.
    pub(crate) fn of(id: &'static str, value: impl Into<String>) -> Self {
        Self::new(id, vec![Node::Value(value.into())])
    }

    /// A component whose values are child components.
    pub(crate) fn of_children(id: &'static str, children: Vec<Component>) -> Self {
        Self::new(id, children.into_iter().map(Node::Component).collect())
    }

    /// Marks the component as (not) contributing, with a reason.
    pub(crate) fn set(&mut self, contributes: bool, hint: impl Into<Hint>) {
        self.contributes = contributes;
        self.hint = Some(hint.into());
    }

    /// Replaces the values; unless told otherwise the contribution follows the new values.
    pub(crate) fn set_values(&mut self, values: Vec<Node>, hint: Option<Hint>) {
        self.contributes = calculate_contributes(&values);
        self.values = values;
        if hint.is_some() {
            self.hint = hint;
        }
    }

    /// Replaces the value by one string, with a hint saying what changed.
    pub(crate) fn set_value(&mut self, value: String, hint: &'static str) {
        self.set_values(vec![Node::Value(value)], Some(Cow::Borrowed(hint)));
    }

    /// The child components.
    pub(crate) fn children(&self) -> impl Iterator<Item = &Component> {
        self.values.iter().filter_map(|v| match v {
            Node::Component(c) => Some(c),
            Node::Value(_) => None,
        })
    }

    pub(crate) fn children_mut(&mut self) -> impl Iterator<Item = &mut Component> {
        self.values.iter_mut().filter_map(|v| match v {
            Node::Component(c) => Some(c),
            Node::Value(_) => None,
        })
    }

    /// The first child with this id.
    pub(crate) fn child_mut(&mut self, id: &str) -> Option<&mut Component> {
        self.children_mut().find(|c| c.id == id)
    }

    /// The values that count, depth first: plain values, and those of contributing children.
    pub fn contributing_values(&self) -> Vec<&str> {
        let mut out = Vec::new();
        self.collect_values(&mut out);
        out
    }

    fn collect_values<'a>(&'a self, out: &mut Vec<&'a str>) {
        self.for_each_contributing(&mut |v| out.push(v));
    }

    /// Calls `f` with each value that counts, in the order of [`Self::contributing_values`].
    fn for_each_contributing<'a>(&'a self, f: &mut impl FnMut(&'a str)) {
        for value in &self.values {
            match value {
                Node::Value(v) => f(v),
                Node::Component(c) if c.contributes => c.for_each_contributing(f),
                Node::Component(_) => {}
            }
        }
    }

    /// Sentry's hash of the component: md5 over its contributing values, concatenated without
    /// separator; `None` when it does not contribute. The values go to md5 as the tree is
    /// walked, without a list of them.
    pub fn hash(&self) -> Option<String> {
        self.contributes.then(|| {
            let mut md5 = Md5::new();
            self.for_each_contributing(&mut |v| md5.update(v.as_bytes()));
            hex::encode(md5.finalize())
        })
    }

    /// A frame as the app variant shows a frame that is not in-app, when only hashes are
    /// wanted: it does not count, so its values are left out rather than copied.
    pub(crate) fn not_counted(&self, hint: &'static str) -> Self {
        Self {
            id: self.id,
            contributes: false,
            hint: Some(Cow::Borrowed(hint)),
            values: Vec::new(),
            in_app: self.in_app,
        }
    }

    /// Whether a contributing component with this id is somewhere below.
    pub(crate) fn has_contributing(&self, id: &str) -> bool {
        self.children()
            .any(|c| c.contributes && (c.id == id || c.has_contributing(id)))
    }
}

fn calculate_contributes(values: &[Node]) -> bool {
    values.iter().any(|v| match v {
        Node::Value(_) => true,
        Node::Component(c) => c.contributes,
    })
}

/// md5 over the values, concatenated without separator, as 32 lowercase hex digits (Sentry's
/// `hash_from_values`).
pub fn hash_values<'a>(values: impl IntoIterator<Item = &'a str>) -> String {
    let mut md5 = Md5::new();
    for value in values {
        md5.update(value.as_bytes());
    }
    hex::encode(md5.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_md5_of_contributing_values_without_separator() {
        let mut ignored = Component::of("value", "ignored");
        ignored.set(false, "ignored because stacktrace takes precedence");
        let tree = Component::of_children(
            "exception",
            vec![
                Component::of("type", "Error"),
                ignored,
                Component::of("x", "b"),
            ],
        );
        assert_eq!(tree.contributing_values(), ["Error", "b"]);
        // md5("Errorb")
        assert_eq!(tree.hash().unwrap(), hash_values(["Errorb"]));
        assert_eq!(hash_values([]), "d41d8cd98f00b204e9800998ecf8427e");
    }

    #[test]
    fn a_component_without_contributing_values_has_no_hash() {
        assert!(Component::empty("function").hash().is_none());
        let mut c = Component::of("function", "f");
        c.set(false, "ignored");
        let parent = Component::of_children("frame", vec![c]);
        assert!(!parent.contributes);
    }
}
