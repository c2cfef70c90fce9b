//! The static evaluation cost of a JSON Schema: an upper bound, computed from the schema alone
//! (draft 2020-12), on how many subschemas one evaluation applies to a single instance node.
//!
//! Owns: the cost model and the refusal of schemas whose evaluation can explode (doubling
//! `$ref` chains, overlapping recursive applicators) or never ends (a `$ref` cycle that does
//! not descend into the instance). Why static: `jsonschema` evaluation cannot be given a budget
//! or interrupted, and a thread stuck in an exponential evaluation cannot be cancelled, so the
//! only safe place to stop such a schema is registration (see `DESIGN.md`).
//!
//! The model. `F(S, d)` is the most evaluations of subschemas at one instance node `d` levels
//! below the node `S` is applied to:
//!
//! - `F(S, 0) = 1 + Σ in-place applicators F(c, 0)`;
//! - `F(S, d) = Σ in-place applicators F(c, d) + (descending applicators, per child node)`.
//!
//! In-place applicators apply to the same instance node: `allOf`/`anyOf`/`oneOf` entries,
//! `not`, `if` plus the larger of `then`/`else` (only one runs), each `dependentSchemas` entry,
//! `$ref` and `$dynamicRef` (the largest of its possible targets). Descending applicators
//! apply to one child node. Of an object member: the `properties` entries are alternatives (a
//! key matches at most one), each plus the `patternProperties` entries its name matches (tested
//! with `jsonschema`'s own regex engine, within a budget; past it, all of them); a key matching
//! no name may match every pattern, so they add up; `additionalProperties` is an alternative to
//! all that; `propertyNames` and `unevaluatedProperties` add. Of an array item: `prefixItems`
//! entries and `items` are alternatives, `contains` and `unevaluatedItems` add. The node a
//! subschema applies to is an object or an array, never both, so `F` is kept per type below
//! the root (of two `anyOf` branches, one into members and one into items, only one descends).
//!
//! A schema with `unevaluatedProperties`/`unevaluatedItems` also pays for `jsonschema`'s
//! marking pass, which validates its in-place applicators again to learn what they evaluated,
//! recursively: `M(S, d) = Σ in-place applicators but not (F(c, d) + M(c, d))`, plus its own
//! `unevaluated*` at `d - 1`, is added to `F(S, d)`. The cost is the largest `F(root, d)` for `d`
//! up to the deepest document the API accepts.
//!
//! `$ref`s resolve within the schema document: JSON pointers, `$anchor`s and `$dynamicAnchor`s,
//! relative to the base URI that `$id`s set. A reference that does not resolve here counts 1:
//! `jsonschema` fetches no remote schema, so it is one of the meta-schemas it bundles (fixed,
//! and cheap), or compilation fails anyway.
//!
//! The computation is bounded by the schema's size, whatever its shape: one node per JSON
//! value of the schema (plus one per `$dynamicAnchor` name), one pass in topological order per
//! depth (stopping early once a depth repeats the one above, or the limit is passed), a few
//! values per node kept, no recursion.

use std::collections::HashMap;
use std::rc::Rc;

use serde_json::Value;

/// Why a schema's cost was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CostError {
    #[error(
        "evaluating it can apply {} subschemas at a single instance node, more than the limit of {limit} (nested allOf/anyOf/oneOf and $refs multiply)",
        show_cost(*cost)
    )]
    TooExpensive { cost: u64, limit: u64 },
    #[error(
        "the subschema at {pointer} applies itself again to the same instance node (an in-place $ref cycle, whose evaluation never ends)"
    )]
    InPlaceCycle { pointer: String },
}

fn show_cost(cost: u64) -> String {
    if cost == u64::MAX {
        "more than 2^64".to_string()
    } else {
        cost.to_string()
    }
}

/// The evaluation cost of `schema` for documents at most `max_depth` levels deep, if it is at
/// most `limit`.
#[cfg(test)]
pub fn check_cost(schema: &Value, max_depth: usize, limit: u64) -> Result<u64, CostError> {
    check_cost_with(schema, &[], max_depth, limit)
}

/// [`check_cost`] for a schema whose `$ref`s may lead into other documents: `externals`, each
/// with the URI it is known by (the registered versions it refers to, see `references.rs`).
/// They are part of the graph, so a reference costs what its target costs.
pub fn check_cost_with(
    schema: &Value,
    externals: &[(&str, &Value)],
    max_depth: usize,
    limit: u64,
) -> Result<u64, CostError> {
    let graph = Graph::build(schema, externals);
    let cost = graph.cost(max_depth, limit)?;
    if cost > limit {
        return Err(CostError::TooExpensive { cost, limit });
    }
    Ok(cost)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A subschema of the document (or a value a JSON pointer `$ref` points at).
    Schema,
    /// A `$ref` that does not resolve in the document: 1, at the node it applies to.
    Opaque,
    /// The targets of a `$dynamicRef` by anchor name: the largest of its members.
    Largest,
}

#[derive(Debug)]
struct Node {
    /// JSON pointer of the subschema (or a description, for the other kinds).
    pointer: String,
    kind: Kind,
    /// In-place applicators: the sum over groups of the largest member of each group.
    in_place: Vec<Vec<usize>>,
    /// What `jsonschema`'s marking pass for `unevaluated*` validates again (every in-place
    /// applicator but `not`), same shape as `in_place`.
    marking: Vec<Vec<usize>>,
    has_unevaluated: bool,
    properties: Vec<usize>,
    pattern_properties: Vec<usize>,
    /// For each `properties` entry, the `patternProperties` entries its name matches; `None`:
    /// not worked out (every pattern is assumed to match every name).
    matching_patterns: Option<Vec<Vec<usize>>>,
    additional_properties: Option<usize>,
    property_names: Option<usize>,
    unevaluated_properties: Option<usize>,
    prefix_items: Vec<usize>,
    items: Option<usize>,
    contains: Option<usize>,
    unevaluated_items: Option<usize>,
}

impl Node {
    fn new(pointer: String, kind: Kind) -> Self {
        Self {
            pointer,
            kind,
            in_place: Vec::new(),
            marking: Vec::new(),
            has_unevaluated: false,
            properties: Vec::new(),
            pattern_properties: Vec::new(),
            matching_patterns: None,
            additional_properties: None,
            property_names: None,
            unevaluated_properties: None,
            prefix_items: Vec::new(),
            items: None,
            contains: None,
            unevaluated_items: None,
        }
    }

    /// Children applied to a child instance node.
    fn descending(&self) -> impl Iterator<Item = usize> + '_ {
        self.properties
            .iter()
            .chain(&self.pattern_properties)
            .chain(&self.prefix_items)
            .copied()
            .chain(self.additional_properties)
            .chain(self.property_names)
            .chain(self.unevaluated_properties)
            .chain(self.items)
            .chain(self.contains)
            .chain(self.unevaluated_items)
    }

    /// Children applied to the same instance node.
    fn same_node(&self) -> impl Iterator<Item = usize> + '_ {
        self.in_place
            .iter()
            .chain(&self.marking)
            .flat_map(|g| g.iter().copied())
    }
}

type Base = Rc<jsonschema::Uri<String>>;

#[derive(Clone, Copy)]
enum RefKind {
    Ref,
    Dynamic,
}

/// The schema as a graph of subschemas.
struct Graph {
    nodes: Vec<Node>,
    root: usize,
}

struct Builder<'a> {
    nodes: Vec<Node>,
    values: Vec<&'a Value>,
    bases: Vec<Base>,
    ids: HashMap<String, usize>,
    /// Subschemas whose keywords are still to be read.
    work: Vec<usize>,
    /// Whether the subschemas being read register their `$id`s and anchors (only those found
    /// through the keywords that `jsonschema` walks too).
    registering: bool,
    /// Resource URI (no fragment) → its root subschema.
    resources: HashMap<String, usize>,
    /// (resource URI, anchor) → subschema.
    anchors: HashMap<(String, String), usize>,
    /// `$dynamicAnchor` name → every subschema that declares it.
    dynamic_anchors: HashMap<String, Vec<usize>>,
    refs: Vec<(usize, RefKind, &'a str)>,
    /// Regex compilations and matches left for `matching_patterns`.
    regex_budget: usize,
    opaque: Option<usize>,
    largest: HashMap<String, Option<usize>>,
}

/// Keywords whose value is one subschema, and keywords whose value holds several.
const SINGLE: &[&str] = &[
    "not",
    "if",
    "then",
    "else",
    "additionalProperties",
    "propertyNames",
    "unevaluatedProperties",
    "items",
    "contains",
    "unevaluatedItems",
    "contentSchema",
];
const ARRAYS: &[&str] = &["allOf", "anyOf", "oneOf", "prefixItems", "items"];
const MAPS: &[&str] = &[
    "properties",
    "patternProperties",
    "dependentSchemas",
    "$defs",
    "definitions",
];

/// Regex compilations and matches spent, per schema, on which `patternProperties` can apply
/// to which `properties` name (beyond it, every pattern is assumed to match every name).
const REGEX_BUDGET: usize = 4096;

fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// `s` with its %-escapes decoded (a URI fragment as a JSON Pointer).
pub(super) fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(hi), Some(lo)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((hi * 16 + lo) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl<'a> Builder<'a> {
    fn intern(&mut self, pointer: String, value: &'a Value, parent: &Base) -> usize {
        if let Some(&id) = self.ids.get(&pointer) {
            return id;
        }
        let mut base = parent.clone();
        if let Some(id) = value.get("$id").and_then(Value::as_str)
            && let Ok(uri) = jsonschema::uri::resolve_against(&parent.borrow(), id)
        {
            base = Rc::new(uri);
        }
        let id = self.nodes.len();
        if self.registering {
            let resource = resource_of(&base);
            if value.get("$id").and_then(Value::as_str).is_some() {
                self.resources.entry(resource.clone()).or_insert(id);
            }
            for keyword in ["$anchor", "$dynamicAnchor"] {
                if let Some(name) = value.get(keyword).and_then(Value::as_str) {
                    self.anchors
                        .entry((resource.clone(), name.to_string()))
                        .or_insert(id);
                }
            }
            if let Some(name) = value.get("$dynamicAnchor").and_then(Value::as_str) {
                self.dynamic_anchors
                    .entry(name.to_string())
                    .or_default()
                    .push(id);
            }
        }
        self.ids.insert(pointer.clone(), id);
        self.nodes.push(Node::new(pointer, Kind::Schema));
        self.values.push(value);
        self.bases.push(base);
        self.work.push(id);
        id
    }

    /// Reads the keywords of every subschema found so far (and of those they lead to).
    fn drain(&mut self) {
        while let Some(id) = self.work.pop() {
            let Value::Object(map) = self.values[id] else {
                continue;
            };
            let base = self.bases[id].clone();
            let pointer = self.nodes[id].pointer.clone();
            let child = |b: &mut Self, path: &str, value: &'a Value| {
                b.intern(format!("{pointer}/{path}"), value, &base)
            };
            let mut singles: HashMap<&str, usize> = HashMap::new();
            for &keyword in SINGLE {
                if let Some(v) = map.get(keyword)
                    && !v.is_array()
                {
                    singles.insert(keyword, child(self, &escape(keyword), v));
                }
            }
            let mut arrays: HashMap<&str, Vec<usize>> = HashMap::new();
            for &keyword in ARRAYS {
                if let Some(Value::Array(entries)) = map.get(keyword) {
                    let ids = entries
                        .iter()
                        .enumerate()
                        .map(|(i, v)| child(self, &format!("{keyword}/{i}"), v))
                        .collect();
                    arrays.insert(keyword, ids);
                }
            }
            let mut maps: HashMap<&str, Vec<usize>> = HashMap::new();
            for &keyword in MAPS {
                if let Some(Value::Object(entries)) = map.get(keyword) {
                    let ids = entries
                        .iter()
                        .map(|(k, v)| child(self, &format!("{}/{}", escape(keyword), escape(k)), v))
                        .collect();
                    maps.insert(keyword, ids);
                }
            }
            let matching = match (map.get("properties"), map.get("patternProperties")) {
                (Some(Value::Object(names)), Some(Value::Object(patterns))) => {
                    self.matching_patterns(names, patterns, maps.get("patternProperties"))
                }
                _ => None,
            };
            for (keyword, kind) in [("$ref", RefKind::Ref), ("$dynamicRef", RefKind::Dynamic)] {
                if let Some(target) = map.get(keyword).and_then(Value::as_str) {
                    self.refs.push((id, kind, target));
                }
            }

            let node = &mut self.nodes[id];
            let both = |group: Vec<usize>, node: &mut Node| {
                node.in_place.push(group.clone());
                node.marking.push(group);
            };
            for keyword in ["allOf", "anyOf", "oneOf"] {
                for &c in arrays.get(keyword).into_iter().flatten() {
                    both(vec![c], node);
                }
            }
            for &c in maps.get("dependentSchemas").into_iter().flatten() {
                both(vec![c], node);
            }
            if let Some(&c) = singles.get("if") {
                both(vec![c], node);
            }
            let branches: Vec<usize> = ["then", "else"]
                .iter()
                .filter_map(|k| singles.get(k).copied())
                .collect();
            if !branches.is_empty() {
                both(branches, node);
            }
            if let Some(&c) = singles.get("not") {
                node.in_place.push(vec![c]);
            }
            node.properties = maps.remove("properties").unwrap_or_default();
            node.pattern_properties = maps.remove("patternProperties").unwrap_or_default();
            node.matching_patterns = matching;
            node.additional_properties = singles.get("additionalProperties").copied();
            node.property_names = singles.get("propertyNames").copied();
            node.unevaluated_properties = singles.get("unevaluatedProperties").copied();
            node.prefix_items = arrays.remove("prefixItems").unwrap_or_default();
            // An array `items` is draft 2019-09's tuple form: alternatives, like `prefixItems`.
            node.prefix_items
                .extend(arrays.remove("items").unwrap_or_default());
            node.items = singles.get("items").copied();
            node.contains = singles.get("contains").copied();
            node.unevaluated_items = singles.get("unevaluatedItems").copied();
            node.has_unevaluated =
                node.unevaluated_properties.is_some() || node.unevaluated_items.is_some();
        }
    }

    /// For each name of `names`, the ids (`ids`, in the order of `patterns`) of the patterns
    /// that match it, by the regex engine `jsonschema` uses; `None` past the budget.
    fn matching_patterns(
        &mut self,
        names: &serde_json::Map<String, Value>,
        patterns: &serde_json::Map<String, Value>,
        ids: Option<&Vec<usize>>,
    ) -> Option<Vec<Vec<usize>>> {
        let ids = ids?;
        let spend = patterns.len().saturating_mul(names.len() + 1);
        if spend > self.regex_budget {
            return None;
        }
        self.regex_budget -= spend;
        let compiled: Vec<Option<jsonschema::Validator>> = patterns
            .keys()
            .map(|p| jsonschema::draft202012::new(&serde_json::json!({ "pattern": p })).ok())
            .collect();
        Some(
            names
                .keys()
                .map(|name| {
                    let name = Value::String(name.clone());
                    compiled
                        .iter()
                        .zip(ids)
                        .filter(|(v, _)| v.as_ref().is_none_or(|v| v.is_valid(&name)))
                        .map(|(_, &id)| id)
                        .collect()
                })
                .collect(),
        )
    }

    fn opaque(&mut self) -> usize {
        *self.opaque.get_or_insert_with(|| {
            self.nodes.push(Node::new(
                "(a $ref outside the schema)".into(),
                Kind::Opaque,
            ));
            self.nodes.len() - 1
        })
    }

    /// The subschema `reference` points at from subschema `from`, if it is in the document.
    fn resolve(&mut self, from: usize, reference: &str) -> Option<usize> {
        let target =
            jsonschema::uri::resolve_against(&self.bases[from].borrow(), reference).ok()?;
        let (resource, fragment) = match target.as_str().split_once('#') {
            Some((r, f)) => (r.to_string(), percent_decode(f)),
            None => (target.as_str().to_string(), String::new()),
        };
        let &root = self.resources.get(&resource)?;
        if fragment.is_empty() {
            return Some(root);
        }
        if !fragment.starts_with('/') {
            return self.anchors.get(&(resource, fragment)).copied();
        }
        let mut value = self.values[root];
        let mut pointer = self.nodes[root].pointer.clone();
        for token in fragment[1..].split('/') {
            let token = token.replace("~1", "/").replace("~0", "~");
            value = match value {
                Value::Object(map) => map.get(&token)?,
                Value::Array(items) => {
                    if token.len() > 1 && token.starts_with('0') {
                        return None;
                    }
                    items.get(token.parse::<usize>().ok()?)?
                }
                _ => return None,
            };
            pointer.push('/');
            pointer.push_str(&escape(&token));
        }
        let base = self.bases[root].clone();
        Some(self.intern(pointer, value, &base))
    }

    /// The node standing for every `$dynamicAnchor` named `name` (the largest of them).
    fn largest(&mut self, name: &str) -> Option<usize> {
        if let Some(&known) = self.largest.get(name) {
            return known;
        }
        let made = self.dynamic_anchors.get(name).cloned().map(|members| {
            let mut node = Node::new(format!("$dynamicAnchor {name:?}"), Kind::Largest);
            node.in_place.push(members);
            self.nodes.push(node);
            self.nodes.len() - 1
        });
        self.largest.insert(name.to_string(), made);
        made
    }
}

fn resource_of(base: &Base) -> String {
    let s = base.as_str();
    s.split_once('#').map_or(s, |(r, _)| r).to_string()
}

impl Graph {
    fn build<'a>(schema: &'a Value, externals: &[(&str, &'a Value)]) -> Self {
        let default: Base =
            Rc::new(jsonschema::uri::from_str("json-schema:///").expect("the default base URI"));
        let mut b = Builder {
            nodes: Vec::new(),
            values: Vec::new(),
            bases: Vec::new(),
            ids: HashMap::new(),
            work: Vec::new(),
            registering: true,
            resources: HashMap::new(),
            anchors: HashMap::new(),
            dynamic_anchors: HashMap::new(),
            refs: Vec::new(),
            regex_budget: REGEX_BUDGET,
            opaque: None,
            largest: HashMap::new(),
        };
        let root = b.intern(String::new(), schema, &default);
        b.resources.insert(resource_of(&default), root);
        b.resources
            .entry(resource_of(&b.bases[root]))
            .or_insert(root);
        for (uri, document) in externals {
            let Ok(base) = jsonschema::uri::from_str(uri) else {
                continue;
            };
            let base: Base = Rc::new(base);
            // Its nodes' pointers start with the URI, so they never meet the root's.
            let node = b.intern(format!("{uri}#"), document, &base);
            b.resources.entry(resource_of(&base)).or_insert(node);
        }
        b.drain();
        // Pointers may lead to values no keyword leads to: they are read too, but what they
        // declare is not registered (`jsonschema` does not see it either).
        b.registering = false;
        while let Some((from, kind, reference)) = b.refs.pop() {
            let target = b.resolve(from, reference);
            b.drain();
            let mut group = vec![target.unwrap_or_else(|| b.opaque())];
            if let RefKind::Dynamic = kind
                && let Some((_, name)) = reference.split_once('#')
                && !name.starts_with('/')
                && let Some(largest) = b.largest(&percent_decode(name))
            {
                group.push(largest);
            }
            b.nodes[from].in_place.push(group.clone());
            b.nodes[from].marking.push(group);
        }
        Graph {
            nodes: b.nodes,
            root,
        }
    }

    /// The nodes reachable from the root, children before parents along in-place edges; an
    /// error if those edges have a cycle.
    fn order(&self) -> Result<Vec<usize>, CostError> {
        let n = self.nodes.len();
        let mut reachable = vec![false; n];
        reachable[self.root] = true;
        let mut todo = vec![self.root];
        while let Some(u) = todo.pop() {
            let node = &self.nodes[u];
            for v in node.same_node().chain(node.descending()) {
                if !reachable[v] {
                    reachable[v] = true;
                    todo.push(v);
                }
            }
        }
        // Iterative depth-first search over in-place edges: 0 new, 1 on the path, 2 done.
        let mut state = vec![0u8; n];
        let mut order = Vec::new();
        for start in (0..n).filter(|&u| reachable[u]) {
            if state[start] != 0 {
                continue;
            }
            state[start] = 1;
            let mut path: Vec<(usize, Vec<usize>)> =
                vec![(start, self.nodes[start].same_node().collect())];
            while let Some((u, next)) = path.last_mut() {
                let u = *u;
                match next.pop() {
                    Some(v) if state[v] == 1 => {
                        let at = if self.nodes[v].kind == Kind::Schema {
                            v
                        } else {
                            u
                        };
                        return Err(CostError::InPlaceCycle {
                            pointer: format!("#{}", self.nodes[at].pointer),
                        });
                    }
                    Some(v) if state[v] == 0 => {
                        state[v] = 1;
                        path.push((v, self.nodes[v].same_node().collect()));
                    }
                    Some(_) => {}
                    None => {
                        state[u] = 2;
                        order.push(u);
                        path.pop();
                    }
                }
            }
        }
        Ok(order)
    }

    /// The largest `F(root, d)` for `d` in `0..=max_depth`, or the first above `limit`.
    ///
    /// Below the root, `F` is kept per type of the instance node a subschema applies to (an
    /// object or an array): in-place applicators apply to the same node, so of two `anyOf`
    /// branches, one descending into members and one into items, only one descends. The type
    /// of a child is unknown, so a child counts the larger of the two.
    fn cost(&self, max_depth: usize, limit: u64) -> Result<u64, CostError> {
        const OBJECT: usize = 0;
        const ARRAY: usize = 1;
        let order = self.order()?;
        let n = self.nodes.len();
        // F at depth d - 1 (the larger of the two types), F and M at depth d per type.
        let mut prev = vec![0u64; n];
        let mut f = [vec![0u64; n], vec![0u64; n]];
        let mut m = [vec![0u64; n], vec![0u64; n]];
        let largest = |group: &[usize], val: &dyn Fn(usize) -> u64| {
            group.iter().map(|&v| val(v)).max().unwrap_or(0)
        };
        let mut cost = 0u64;
        for d in 0..=max_depth {
            for &u in &order {
                let node = &self.nodes[u];
                for t in [OBJECT, ARRAY] {
                    let (f_t, m_t) = (&f[t], &m[t]);
                    let (fu, mu) = match node.kind {
                        Kind::Opaque => (u64::from(d == 0), 0),
                        Kind::Largest => node.in_place[0]
                            .iter()
                            .fold((0, 0), |(a, b), &v| (a.max(f_t[v]), b.max(m_t[v]))),
                        Kind::Schema => {
                            let mut fu = u64::from(d == 0);
                            for group in &node.in_place {
                                fu = fu.saturating_add(largest(group, &|v| f_t[v]));
                            }
                            let mut mu = 0u64;
                            for group in &node.marking {
                                mu = mu.saturating_add(largest(group, &|v| {
                                    f_t[v].saturating_add(m_t[v])
                                }));
                            }
                            if d > 0 {
                                let at = |c: Option<usize>| c.map_or(0, |c| prev[c]);
                                let below = if t == OBJECT {
                                    mu = mu.saturating_add(at(node.unevaluated_properties));
                                    let sum = |ids: &[usize]| {
                                        ids.iter().fold(0u64, |s, &v| s.saturating_add(prev[v]))
                                    };
                                    let patterns = sum(&node.pattern_properties);
                                    let named = match &node.matching_patterns {
                                        Some(matching) => node
                                            .properties
                                            .iter()
                                            .zip(matching)
                                            .map(|(&v, m)| prev[v].saturating_add(sum(m)))
                                            .max()
                                            .unwrap_or(0),
                                        None => largest(&node.properties, &|v| prev[v])
                                            .saturating_add(patterns),
                                    };
                                    named
                                        .max(patterns)
                                        .max(at(node.additional_properties))
                                        .saturating_add(at(node.property_names))
                                        .saturating_add(at(node.unevaluated_properties))
                                } else {
                                    mu = mu.saturating_add(at(node.unevaluated_items));
                                    largest(&node.prefix_items, &|v| prev[v])
                                        .max(at(node.items))
                                        .saturating_add(at(node.contains))
                                        .saturating_add(at(node.unevaluated_items))
                                };
                                fu = fu.saturating_add(below);
                            }
                            if node.has_unevaluated {
                                fu = fu.saturating_add(mu);
                            }
                            (fu, mu)
                        }
                    };
                    f[t][u] = fu;
                    m[t][u] = mu;
                }
            }
            cost = cost.max(f[OBJECT][self.root]).max(f[ARRAY][self.root]);
            if cost > limit {
                break;
            }
            // Below the root, depth d + 1 is a function of depth d alone: once a depth repeats
            // the one above, every deeper one does too.
            let mut same = true;
            for &u in &order {
                let now = f[OBJECT][u].max(f[ARRAY][u]);
                same &= prev[u] == now;
                prev[u] = now;
            }
            if d > 0 && same {
                break;
            }
        }
        Ok(cost)
    }
}

#[cfg(test)]
mod tests {
    use super::super::MAX_EVALUATIONS_PER_NODE;
    use super::*;
    use serde_json::json;

    fn cost(schema: &Value) -> Result<u64, CostError> {
        check_cost(schema, super::super::COST_INSTANCE_DEPTH, u64::MAX)
    }

    /// `$defs` a0..a{levels-1}, each applying the next twice; the last applies a leaf.
    fn doubling(levels: usize) -> Value {
        let mut defs = serde_json::Map::new();
        for i in 0..levels {
            let next = format!("#/$defs/a{}", i + 1);
            defs.insert(
                format!("a{i}"),
                json!({"allOf": [{"$ref": next}, {"$ref": next}]}),
            );
        }
        defs.insert(format!("a{levels}"), json!({"type": "string"}));
        json!({"$ref": "#/$defs/a0", "$defs": defs})
    }

    #[test]
    fn a_28_level_doubling_chain_is_refused() {
        let schema = doubling(28);
        assert!(schema.to_string().len() < 2048, "the probe is about 1.9 KB");
        let err = check_cost(&schema, 64, MAX_EVALUATIONS_PER_NODE).unwrap_err();
        assert!(
            matches!(err, CostError::TooExpensive { cost, .. } if cost > 1 << 29),
            "{err}"
        );
        // 2^14 doublings too.
        assert!(check_cost(&doubling(14), 64, MAX_EVALUATIONS_PER_NODE).is_err());
    }

    #[test]
    fn doubling_chains_cost_about_four_times_their_width() {
        // a_i costs 3 + 2 a_{i+1} (itself, its two `$ref` entries, twice the next level), and
        // the root `$ref` adds 2: 2^(k+2) - 2 for k levels.
        for k in 0..20 {
            assert_eq!(
                cost(&doubling(k)).unwrap(),
                (1 << (k + 2)) - 2,
                "{k} levels"
            );
        }
    }

    #[test]
    fn the_limit_is_between_seven_and_eight_doublings() {
        // 2^10 = 1024 evaluations of the leaf cost 4094 in this model (each level and each
        // `$ref` entry counts too): above the limit. The boundary is between 2^7 and 2^8.
        assert_eq!(cost(&doubling(10)), Ok(4094));
        assert!(check_cost(&doubling(10), 64, MAX_EVALUATIONS_PER_NODE).is_err());
        assert!(check_cost(&doubling(7), 64, MAX_EVALUATIONS_PER_NODE).is_ok());
        assert!(check_cost(&doubling(8), 64, MAX_EVALUATIONS_PER_NODE).is_err());
        // At the limit and one past it.
        let flat = |n: usize| json!({"allOf": vec![json!({"type": "string"}); n]});
        let limit = MAX_EVALUATIONS_PER_NODE;
        assert_eq!(check_cost(&flat(limit as usize - 1), 64, limit), Ok(limit));
        assert_eq!(
            check_cost(&flat(limit as usize), 64, limit),
            Err(CostError::TooExpensive {
                cost: limit + 1,
                limit
            })
        );
    }

    #[test]
    fn a_recursive_tree_is_cheap() {
        let tree = json!({
            "type": "object",
            "properties": {
                "children": {"type": "array", "items": {"$ref": "#"}},
                "left": {"$ref": "#"},
                "right": {"$ref": "#"}
            }
        });
        assert_eq!(cost(&tree), Ok(2));
    }

    #[test]
    fn refs_resolve_by_pointer_anchor_and_id() {
        // `a` costs 1 + its target's 4 when the target resolves, 1 + 1 when it does not.
        let with_ref = |reference: &str| {
            json!({
                "$id": "https://example.com/tree",
                "properties": {"a": {"$ref": reference}},
                "$defs": {
                    "node": {"$anchor": "node", "allOf": [true, true, true]},
                    "inner": {
                        "$id": "inner/",
                        "$defs": {"x": {"$anchor": "x", "allOf": [true, true, true]}}
                    }
                }
            })
        };
        for resolved in [
            "#node",
            "#/$defs/node",
            "#/$defs/no%64e",
            "tree#/$defs/node",
            "https://example.com/tree#node",
            "inner/#x",
            "inner/#/$defs/x",
            "#/$defs/inner/$defs/x",
        ] {
            assert_eq!(cost(&with_ref(resolved)), Ok(5), "{resolved}");
        }
        for unresolved in ["#x", "other#node", "#/$defs/nothing", "#/properties/a/$ref"] {
            assert_eq!(cost(&with_ref(unresolved)), Ok(2), "{unresolved}");
        }
    }

    #[test]
    fn recursion_that_multiplies_per_level_is_refused() {
        // A key matching both patterns is checked twice at every level: 2^d at depth d.
        let schema = json!({
            "patternProperties": {"^a": {"$ref": "#"}, "b$": {"$ref": "#"}}
        });
        assert_eq!(check_cost(&schema, 5, u64::MAX), Ok(2 << 5));
        assert!(check_cost(&schema, 64, MAX_EVALUATIONS_PER_NODE).is_err());
        // `properties` entries are alternatives: no growth.
        let schema = json!({"properties": {"a": {"$ref": "#"}, "b": {"$ref": "#"}}});
        assert_eq!(check_cost(&schema, 64, u64::MAX), Ok(2));
    }

    #[test]
    fn patterns_add_only_to_the_names_they_match() {
        // An OpenAPI path item: `parameters` and the operations recurse, but no key is both.
        let disjoint = json!({
            "properties": {"parameters": {"items": {"$ref": "#"}}},
            "patternProperties": {"^(get|put)$": {"$ref": "#"}, "^x-": {}}
        });
        // A key matching no name may match both patterns (1 + 2), but nothing grows with depth.
        assert_eq!(cost(&disjoint), Ok(3));
        assert_eq!(check_cost(&disjoint, 1, u64::MAX), Ok(3));
        // `get` is a name and matches a pattern: both apply to it, at every level.
        let overlapping = json!({
            "properties": {"get": {"$ref": "#"}},
            "patternProperties": {"^g": {"$ref": "#"}}
        });
        assert_eq!(check_cost(&overlapping, 5, u64::MAX), Ok(2 << 5));
    }

    #[test]
    fn in_place_cycles_are_refused() {
        let schema = json!({
            "$ref": "#/$defs/a",
            "$defs": {
                "a": {"allOf": [{"$ref": "#/$defs/b"}]},
                "b": {"anyOf": [{"type": "string"}, {"$ref": "#/$defs/a"}]}
            }
        });
        let err = cost(&schema).unwrap_err();
        assert!(matches!(err, CostError::InPlaceCycle { .. }), "{err}");
        assert!(err.to_string().contains("#/$defs/"), "{err}");
        let err = cost(&json!({"not": {"$ref": "#"}})).unwrap_err();
        assert_eq!(
            err,
            CostError::InPlaceCycle {
                pointer: "#".into()
            }
        );
        // A cycle nothing applies is not evaluated.
        let unused = json!({"$defs": {"a": {"$ref": "#/$defs/a"}}});
        assert_eq!(cost(&unused), Ok(1));
    }

    #[test]
    fn unresolvable_refs_cost_one() {
        let schema =
            json!({"allOf": [{"$ref": "https://example.com/other"}, {"$ref": "#/nowhere"}]});
        assert_eq!(cost(&schema), Ok(5));
    }

    #[test]
    fn a_reference_to_another_registered_document_costs_what_its_target_costs() {
        // The target: a doubling chain of 6 levels, 2^8 - 2 = 254 on its own.
        let target = doubling(6);
        let uri = "scarab:schemas/common/versions/1";
        let via_uri = json!({"$ref": uri});
        assert_eq!(
            check_cost_with(&via_uri, &[(uri, &target)], 64, u64::MAX),
            Ok(255)
        );
        // Four references to it in one allOf: past the limit, though each alone is not.
        let four = json!({"allOf": [{"$ref": uri}, {"$ref": uri}, {"$ref": uri}, {"$ref": uri}]});
        assert!(check_cost_with(&four, &[(uri, &target)], 64, MAX_EVALUATIONS_PER_NODE).is_err());
        // By its own $id, whole or through a pointer, it resolves too.
        let mut with_id = doubling(3);
        with_id["$id"] = json!("https://example.com/common.json");
        let alone = check_cost_with(&with_id, &[], 64, u64::MAX).unwrap();
        let whole = json!({"$ref": "https://example.com/common.json"});
        assert_eq!(
            check_cost_with(&whole, &[(uri, &with_id)], 64, u64::MAX),
            Ok(alone + 1)
        );
        let pointer = json!({"$ref": "https://example.com/common.json#/$defs/a0"});
        assert_eq!(
            check_cost_with(&pointer, &[(uri, &with_id)], 64, u64::MAX),
            Ok(alone)
        );
    }

    #[test]
    fn dynamic_refs_take_the_largest_target() {
        let schema = json!({
            "$dynamicAnchor": "node",
            "properties": {"next": {"$dynamicRef": "#node"}},
            "$defs": {"wide": {"$dynamicAnchor": "node", "allOf": [{}, {}, {}]}}
        });
        // At depth 1: `next` (1) + the larger of the root (1) and `wide` (4).
        assert_eq!(cost(&schema), Ok(5));
    }

    #[test]
    fn the_meta_schema_pattern_is_accepted() {
        // The draft 2020-12 meta-schema's shape: a recursive `$dynamicRef` through `allOf`.
        let schema = json!({
            "$dynamicAnchor": "meta",
            "allOf": [{"$ref": "#/$defs/applicator"}],
            "$defs": {
                "applicator": {
                    "$dynamicAnchor": "meta",
                    "properties": {
                        "allOf": {"type": "array", "items": {"$dynamicRef": "#meta"}},
                        "not": {"$dynamicRef": "#meta"}
                    }
                }
            }
        });
        let c = cost(&schema).unwrap();
        assert!(c < 10, "{c}");
    }

    #[test]
    fn unevaluated_keywords_pay_for_marking() {
        let plain = json!({"allOf": [{"properties": {"a": true}}]});
        let marked =
            json!({"allOf": [{"properties": {"a": true}}], "unevaluatedProperties": false});
        assert!(cost(&marked).unwrap() > cost(&plain).unwrap());
    }

    #[test]
    fn hostile_shapes_are_computed_quickly() {
        // A long in-place chain and a long descending chain: no recursion, bounded work.
        let mut defs = serde_json::Map::new();
        for i in 0..20_000 {
            defs.insert(
                format!("d{i}"),
                json!({"$ref": format!("#/$defs/d{}", i + 1)}),
            );
        }
        defs.insert(
            "d20000".into(),
            json!({"properties": {"x": {"$ref": "#/$defs/d0"}}}),
        );
        let schema = json!({"$ref": "#/$defs/d0", "$defs": defs});
        let started = std::time::Instant::now();
        let c = cost(&schema).unwrap();
        assert!(c > 20_000, "{c}");
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
    }

    #[test]
    fn the_example_schemas_are_accepted() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas");
        let mut seen = 0;
        let mut dirs = vec![dir];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    dirs.push(path);
                    continue;
                }
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                if !name.ends_with(".json") || name.ends_with(".examples.json") {
                    continue;
                }
                let schema: Value =
                    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
                let c = check_cost(&schema, 64, MAX_EVALUATIONS_PER_NODE)
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                println!("{}: cost {c}", path.display());
                assert!(
                    c <= MAX_EVALUATIONS_PER_NODE / 100,
                    "{}: {c}",
                    path.display()
                );
                seen += 1;
            }
        }
        assert!(seen >= 3, "{seen} schemas");
    }
}
