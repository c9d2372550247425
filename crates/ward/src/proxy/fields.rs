//! The allow-list of `fields = [...]` (routes and composite parts): a small path syntax and
//! the trimming of a JSON value to it.
//!
//! A path is names joined by `.`, each name optionally followed by `[]` once per level of
//! array it steps into: `id`, `a.b`, `items[].sku`, `matrix[][].x`; a path may start with `[]`
//! for a top-level array (`[].id`). A name is any characters but `.`, `[`, `]`, whitespace and
//! control characters. Trimming keeps what a path names and nothing else:
//! - a missing member is left out (never invented as `null`);
//! - a value whose shape does not fit the path (a scalar where members are named, an object
//!   where `[]` steps into an array) is left out, so an upstream that changes shape exposes
//!   nothing new; at the top level that leaves `null`;
//! - an array item that does not fit is dropped from the array;
//! - an object that fits but has none of the named members stays as `{}`.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// A compiled allow-list: the union of its paths as a tree of steps.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSet {
    root: Tree,
}

/// What to keep of one value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Tree {
    /// The whole value is kept (a path ended here).
    whole: bool,
    /// Members kept of an object.
    members: BTreeMap<String, Tree>,
    /// What to keep of each item of an array.
    items: Option<Box<Tree>>,
}

/// Why a field path is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldPathError {
    /// The list is empty: it would keep nothing, which is better said by not routing.
    #[error("must list at least one field")]
    Empty,
    /// One path is malformed.
    #[error(
        "{path:?} is not a field path ({reason}); write names joined by \".\", with \"[]\" after a name for each array level, e.g. \"items[].sku\""
    )]
    Malformed {
        /// The path as written.
        path: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// One step of a path.
#[derive(Debug, PartialEq, Eq)]
enum Step<'a> {
    Member(&'a str),
    Each,
}

impl FieldSet {
    /// Compiles `paths`; every path must be well-formed and the list non-empty.
    pub fn parse<S: AsRef<str>>(paths: &[S]) -> Result<Self, FieldPathError> {
        if paths.is_empty() {
            return Err(FieldPathError::Empty);
        }
        let mut root = Tree::default();
        for path in paths {
            let path = path.as_ref();
            let steps = steps(path).map_err(|reason| FieldPathError::Malformed {
                path: path.to_owned(),
                reason,
            })?;
            root.insert(&steps);
        }
        Ok(Self { root })
    }

    /// `value` reduced to the allow-list (see the module doc); `Value::Null` when its top level
    /// does not fit.
    pub fn apply(&self, value: Value) -> Value {
        self.root.apply(value).unwrap_or(Value::Null)
    }
}

impl Tree {
    fn insert(&mut self, steps: &[Step<'_>]) {
        let Some((first, rest)) = steps.split_first() else {
            self.whole = true;
            return;
        };
        let next = match first {
            Step::Member(name) => self.members.entry((*name).to_owned()).or_default(),
            Step::Each => self.items.get_or_insert_with(Box::default),
        };
        next.insert(rest);
    }

    fn apply(&self, value: Value) -> Option<Value> {
        if self.whole {
            return Some(value);
        }
        match value {
            Value::Object(object) if !self.members.is_empty() => {
                Some(Value::Object(self.keep_members(object)))
            }
            Value::Array(items) => {
                let each = self.items.as_deref()?;
                Some(Value::Array(
                    items
                        .into_iter()
                        .filter_map(|item| each.apply(item))
                        .collect(),
                ))
            }
            _ => None,
        }
    }

    fn keep_members(&self, mut object: Map<String, Value>) -> Map<String, Value> {
        let mut kept = Map::new();
        for (name, tree) in &self.members {
            if let Some(value) = object.remove(name).and_then(|value| tree.apply(value)) {
                kept.insert(name.clone(), value);
            }
        }
        kept
    }
}

/// The steps of one path, or why it is malformed.
fn steps(path: &str) -> Result<Vec<Step<'_>>, &'static str> {
    if path.is_empty() {
        return Err("empty");
    }
    let mut steps = Vec::new();
    for (index, segment) in path.split('.').enumerate() {
        let name_end = segment.find('[').unwrap_or(segment.len());
        let (name, mut brackets) = segment.split_at(name_end);
        // Only the first segment may skip its name, to step into a top-level array (`[].id`).
        let leading_array = index == 0 && !brackets.is_empty();
        if name.is_empty() && !leading_array {
            return Err("empty name");
        }
        if name
            .chars()
            .any(|c| c == ']' || c.is_whitespace() || c.is_control())
        {
            return Err("a name holds \"]\", whitespace or a control character");
        }
        if !name.is_empty() {
            steps.push(Step::Member(name));
        }
        while let Some(rest) = brackets.strip_prefix("[]") {
            steps.push(Step::Each);
            brackets = rest;
        }
        if !brackets.is_empty() {
            return Err("\"[\" must be followed by \"]\" and then \".\", \"[]\" or the end");
        }
    }
    Ok(steps)
}

#[cfg(test)]
mod tests;
