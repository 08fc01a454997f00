//! Size limits of a GraphQL request, counted on the parsed document before anything runs.
//!
//! Depth and cost limits alone let a client multiply cheap fields freely: one query with a
//! thousand aliases of `getOrder` costs a thousand reads and stays within both. So the fields a
//! request would resolve are counted with every fragment spread expanded where it is used (a
//! fragment used ten times counts ten times), and the aliases among them likewise.

use std::collections::HashMap;

use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};

/// Most aliased fields in one request. Enough to fetch a few dozen orders by id in one round
/// trip; beyond that, `orders(first: …)` pages are the way.
pub const MAX_ALIASES: usize = 30;

/// Most fields in one request, with fragments expanded. The standard introspection query
/// (GraphiQL's) selects 217; a page of orders with customers and lines selects about 30.
pub const MAX_FIELDS: usize = 500;

/// GraphiQL's introspection query, as browsers send it: what [`MAX_FIELDS`] must always allow.
pub const INTROSPECTION_QUERY: &str = r"
query IntrospectionQuery {
  __schema {
    queryType { name } mutationType { name } subscriptionType { name }
    types { ...FullType }
    directives { name description locations args { ...InputValue } }
  }
}
fragment FullType on __Type {
  kind name description
  fields(includeDeprecated: true) { name description args { ...InputValue } type { ...TypeRef } isDeprecated deprecationReason }
  inputFields { ...InputValue }
  interfaces { ...TypeRef }
  enumValues(includeDeprecated: true) { name description isDeprecated deprecationReason }
  possibleTypes { ...TypeRef }
}
fragment InputValue on __InputValue { name description type { ...TypeRef } defaultValue }
fragment TypeRef on __Type {
  kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name
  ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } } } } } } }
}";

/// What a request selects, fragments expanded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Size {
    /// Fields, aliased or not.
    pub fields: usize,
    /// Fields with an alias.
    pub aliases: usize,
}

impl Size {
    fn add(self, other: Size) -> Size {
        Size {
            fields: self.fields.saturating_add(other.fields),
            aliases: self.aliases.saturating_add(other.aliases),
        }
    }
}

/// Counts the fields and aliases of every operation of `doc`. Fragments are expanded where
/// they are spread; a fragment that spreads itself (invalid, and refused later by validation)
/// counts as empty inside itself.
#[must_use]
pub fn measure(doc: &ExecutableDocument) -> Size {
    let mut counter = Counter {
        doc,
        done: HashMap::new(),
        visiting: Vec::new(),
    };
    doc.operations
        .iter()
        .map(|(_, op)| counter.selection_set(&op.node.selection_set.node))
        .fold(Size::default(), Size::add)
}

struct Counter<'a> {
    doc: &'a ExecutableDocument,
    /// Sizes of fragments already counted: a fragment bomb (fragments spreading fragments
    /// many times) costs one pass per fragment, not one per use.
    done: HashMap<&'a str, Size>,
    visiting: Vec<&'a str>,
}

impl<'a> Counter<'a> {
    fn selection_set(&mut self, set: &'a SelectionSet) -> Size {
        let mut size = Size::default();
        for selection in &set.items {
            let part = match &selection.node {
                Selection::Field(field) => {
                    let own = Size {
                        fields: 1,
                        aliases: usize::from(field.node.alias.is_some()),
                    };
                    own.add(self.selection_set(&field.node.selection_set.node))
                }
                Selection::InlineFragment(inline) => {
                    self.selection_set(&inline.node.selection_set.node)
                }
                Selection::FragmentSpread(spread) => {
                    self.fragment(spread.node.fragment_name.node.as_str())
                }
            };
            size = size.add(part);
        }
        size
    }

    fn fragment(&mut self, name: &'a str) -> Size {
        if let Some(size) = self.done.get(name) {
            return *size;
        }
        if self.visiting.contains(&name) {
            return Size::default();
        }
        let Some(fragment) = self.doc.fragments.get(name) else {
            return Size::default();
        };
        self.visiting.push(name);
        let size = self.selection_set(&fragment.node.selection_set.node);
        self.visiting.pop();
        self.done.insert(name, size);
        size
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn size(query: &str) -> Size {
        measure(&async_graphql::parser::parse_query(query).unwrap())
    }

    #[test]
    fn fields_and_aliases_are_counted() {
        assert_eq!(
            size("{ getOrder(id: \"a\") { id status } }"),
            Size {
                fields: 3,
                aliases: 0
            }
        );
        assert_eq!(
            size("{ a: getOrder(id: \"a\") { id } b: getOrder(id: \"b\") { id } }"),
            Size {
                fields: 4,
                aliases: 2
            }
        );
    }

    #[test]
    fn fragments_count_once_per_use() {
        let q = "query { a: getOrder(id: \"a\") { ...F } b: getOrder(id: \"b\") { ...F } }
                 fragment F on Order { id status x: total { amount } }";
        assert_eq!(
            size(q),
            Size {
                fields: 2 + 2 * 4,
                aliases: 2 + 2
            }
        );
    }

    #[test]
    fn a_fragment_bomb_is_counted_in_full_without_expanding_it() {
        // Each level spreads the one below ten times: 10^6 fields in all.
        let mut q = String::from("{ ...L0 }\n");
        for level in 0..6 {
            let below = format!("...L{} ", level + 1);
            q.push_str(&format!(
                "fragment L{level} on Query {{ {} }}\n",
                below.repeat(10)
            ));
        }
        q.push_str("fragment L6 on Query { __typename }\n");
        assert_eq!(size(&q).fields, 1_000_000);
    }

    #[test]
    fn the_introspection_query_is_well_within_the_field_limit() {
        let s = size(INTROSPECTION_QUERY);
        assert_eq!(s.aliases, 0);
        assert!(s.fields < MAX_FIELDS / 2, "{s:?}");
    }

    #[test]
    fn a_fragment_spreading_itself_does_not_loop() {
        let q = "{ ...F } fragment F on Query { __typename ...F }";
        assert_eq!(size(q).fields, 1);
    }
}
