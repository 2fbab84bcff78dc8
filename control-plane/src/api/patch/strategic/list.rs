//! List merging for the strategic merge patch: merge-key and set-merge
//! lists, atomic lists, `$setElementOrder` and `$deleteFromPrimitiveList`.

use super::*;

/// `Some(merge key)` for a keyed merge list, `Some(None)` for a set-merge
/// list, `None` for an atomic list.
fn merge_mode(strategy: ListStrategy) -> Option<Option<&'static str>> {
    match strategy {
        ListStrategy::Atomic => None,
        ListStrategy::MergeByKey(key) => Some(Some(key)),
        ListStrategy::SetMerge => Some(None),
    }
}

/// The identity of a list element: its merge-key value, or the element itself
/// for primitive lists.
fn identity<'v>(value: &'v Value, key: Option<&str>) -> Option<&'v Value> {
    match key {
        Some(key) => value.get(key),
        None => Some(value),
    }
}

fn position_of(order: &[Option<Value>], ident: Option<&Value>) -> Option<usize> {
    let ident = ident?;
    order
        .iter()
        .position(|o| o.as_ref().is_some_and(|o| json_eq(o, ident)))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum ElementKind {
    Objects,
    Primitives,
}

/// Kubernetes' `sliceElementType`: all elements of both lists must share one
/// JSON type, and that type must not be a list.
fn element_kind(original: &[Value], patch: &[Value], path: &Path) -> Result<ElementKind> {
    let mut first: Option<&Value> = None;
    for value in original.iter().chain(patch) {
        if value.is_array() {
            return Err(StrategicMergeError::ListOfLists {
                path: path.render(),
            });
        }
        match first {
            None => first = Some(value),
            Some(f) if !same_kind(f, value) => {
                return Err(StrategicMergeError::MixedListElements {
                    path: path.render(),
                    first: kind_name(f),
                    other: kind_name(value),
                })
            }
            Some(_) => {}
        }
    }
    Ok(match first {
        Some(Value::Object(_)) => ElementKind::Objects,
        _ => ElementKind::Primitives,
    })
}

// ---------------------------------------------------------------- lists

pub(super) fn merge_list_field(
    original: Vec<Value>,
    patch: &[Value],
    field: FieldSchema,
    path: &Path,
) -> Result<Vec<Value>> {
    match merge_mode(field.list) {
        Some(key) => merge_list(original, patch, key, field.child, path),
        None => atomic_list(patch, field.child, path),
    }
}

/// An atomic list is the patch list itself, cleaned of directives: elements
/// carrying `$patch` are dropped (as Kubernetes' `removeDirectives` does).
fn atomic_list(
    patch: &[Value],
    child: Option<&'static TypeSchema>,
    path: &Path,
) -> Result<Vec<Value>> {
    path.check_depth()?;
    let mut out = Vec::with_capacity(patch.len());
    for (i, element) in patch.iter().enumerate() {
        let element_path = path.index(i);
        match element {
            Value::Object(p) => {
                if let Some(directive) = p.get(DIRECTIVE) {
                    parse_directive(directive, &element_path.key(DIRECTIVE))?;
                    continue;
                }
                out.push(Value::Object(merge_map(
                    Object::new(),
                    p,
                    child,
                    &element_path,
                )?));
            }
            Value::Array(inner) => out.push(Value::Array(atomic_list(inner, None, &element_path)?)),
            scalar => out.push(scalar.clone()),
        }
    }
    Ok(out)
}

/// Kubernetes' `mergeSlice` for a list with patch strategy "merge": by merge
/// key for lists of objects, as an ordered set union for primitives.
fn merge_list(
    mut original: Vec<Value>,
    patch: &[Value],
    key: Option<&'static str>,
    child: Option<&'static TypeSchema>,
    path: &Path,
) -> Result<Vec<Value>> {
    path.check_depth()?;
    if original.is_empty() && patch.is_empty() {
        return Ok(original);
    }
    let kind = element_kind(&original, patch, path)?;
    if kind == ElementKind::Primitives {
        if let Some(key) = key {
            return Err(StrategicMergeError::PrimitivesInKeyedList {
                path: path.render(),
                key: key.to_string(),
            });
        }
        let server_order: Vec<Option<Value>> = original.iter().map(|v| Some(v.clone())).collect();
        let patch_order: Vec<Option<Value>> = patch.iter().map(|v| Some(v.clone())).collect();
        let mut merged: Vec<Value> = Vec::with_capacity(original.len() + patch.len());
        for value in original.into_iter().chain(patch.iter().cloned()) {
            if !merged.iter().any(|m| json_eq(m, &value)) {
                merged.push(value);
            }
        }
        return Ok(normalize_element_order(
            merged,
            &patch_order,
            &server_order,
            None,
        ));
    }
    let key = key.ok_or_else(|| StrategicMergeError::NoMergeKey {
        path: path.render(),
    })?;

    // Special elements first: deletions, and the replace marker.
    let mut replace = false;
    let mut regular: Vec<(usize, &Object)> = Vec::with_capacity(patch.len());
    for (i, element) in patch.iter().enumerate() {
        let Some(p) = element.as_object() else {
            continue;
        };
        let element_path = path.index(i);
        match p.get(DIRECTIVE) {
            None => regular.push((i, p)),
            Some(directive) => match parse_directive(directive, &element_path.key(DIRECTIVE))? {
                Directive::Delete => {
                    let value = p.get(key).ok_or_else(|| missing_key(&element_path, key))?;
                    original.retain(|o| !o.get(key).is_some_and(|v| json_eq(v, value)));
                }
                Directive::Replace => replace = true,
                // Kubernetes rejects this; treated as an ordinary element.
                Directive::Merge => regular.push((i, p)),
            },
        }
    }

    if replace {
        let mut out = Vec::with_capacity(regular.len());
        for (i, p) in regular {
            let element_path = path.index(i);
            if !p.contains_key(key) {
                return Err(missing_key(&element_path, key));
            }
            out.push(Value::Object(merge_map(
                Object::new(),
                p,
                child,
                &element_path,
            )?));
        }
        return Ok(out);
    }

    let server_order: Vec<Option<Value>> = original
        .iter()
        .map(|o| identity(o, Some(key)).cloned())
        .collect();
    let mut patch_order: Vec<Option<Value>> = Vec::with_capacity(regular.len());
    for (i, p) in regular {
        let element_path = path.index(i);
        let value = p.get(key).ok_or_else(|| missing_key(&element_path, key))?;
        patch_order.push(Some(value.clone()));
        let found = original
            .iter()
            .position(|o| o.get(key).is_some_and(|v| json_eq(v, value)));
        match found.map(|at| (at, std::mem::take(&mut original[at]))) {
            Some((at, Value::Object(o))) => {
                original[at] = Value::Object(merge_map(o, p, child, &element_path)?)
            }
            Some((at, other)) => original[at] = other,
            None => original.push(Value::Object(merge_map(
                Object::new(),
                p,
                child,
                &element_path,
            )?)),
        }
    }
    Ok(normalize_element_order(
        original,
        &patch_order,
        &server_order,
        Some(key),
    ))
}

fn missing_key(path: &Path, key: &str) -> StrategicMergeError {
    StrategicMergeError::MissingMergeKey {
        path: path.render(),
        key: key.to_string(),
    }
}

/// Kubernetes' `normalizeElementOrder`: items named by the patch keep the
/// patch order, the others keep the original order, and the two sequences
/// are interleaved by `mergeSortedSlice`.
fn normalize_element_order(
    merged: Vec<Value>,
    patch_order: &[Option<Value>],
    server_order: &[Option<Value>],
    key: Option<&str>,
) -> Vec<Value> {
    let (patch_items, server_only): (Vec<Value>, Vec<Value>) = merged
        .into_iter()
        .partition(|v| position_of(patch_order, identity(v, key)).is_some());
    let patch_items = sort_by_order(patch_items, patch_order, key);
    let server_only = sort_by_order(server_only, server_order, key);

    // mergeSortedSlice(left = server_only, right = patch_items, serverOrder):
    // a server-only item goes first only when both items are in the original
    // list and it came earlier there; so new patch items come before the
    // remaining server-only items.
    let rank = |v: &Value| position_of(server_order, identity(v, key));
    let mut left = server_only.into_iter().map(|v| (rank(&v), v)).peekable();
    let mut right = patch_items.into_iter().map(|v| (rank(&v), v)).peekable();
    let mut out = Vec::new();
    loop {
        let take_left = match (left.peek(), right.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some((l, _)), Some((r, _))) => matches!((l, r), (Some(l), Some(r)) if l < r),
        };
        let next = if take_left { left.next() } else { right.next() };
        if let Some((_, value)) = next {
            out.push(value);
        }
    }
    out
}

/// Stable sort by position in `order`; items not in `order` go last.
fn sort_by_order(items: Vec<Value>, order: &[Option<Value>], key: Option<&str>) -> Vec<Value> {
    let mut ranked: Vec<(usize, Value)> = items
        .into_iter()
        .map(|v| {
            (
                position_of(order, identity(&v, key)).unwrap_or(usize::MAX),
                v,
            )
        })
        .collect();
    ranked.sort_by_key(|(rank, _)| *rank);
    ranked.into_iter().map(|(_, v)| v).collect()
}

/// Handles `$setElementOrder/<field>`: merges the field's patch list (if any)
/// and orders the result. Returns whether the field was consumed.
pub(super) fn apply_set_element_order(
    original: &mut Object,
    patch: &Object,
    directive_key: &str,
    field: &str,
    order: &Value,
    schema: Option<&'static TypeSchema>,
    path: &Path,
) -> Result<bool> {
    let order_path = path.key(directive_key);
    let order = order
        .as_array()
        .ok_or_else(|| StrategicMergeError::DirectiveNotList {
            path: path.render(),
            directive: directive_key.to_string(),
            found: kind_name(order),
        })?;
    let field_path = path.key(field);
    let patch_list = match patch.get(field) {
        None => None,
        // `field: null` deletes the list; the ordering is moot.
        Some(Value::Null) => return Ok(false),
        Some(Value::Array(list)) => Some(list),
        Some(other) => {
            return Err(StrategicMergeError::TypeMismatch {
                path: field_path.render(),
                expected: "list",
                found: kind_name(other),
            })
        }
    };
    let schema = lookup(schema, field);
    let key = match schema.list {
        ListStrategy::MergeByKey(key) => Some(key),
        _ => None,
    };
    if let Some(list) = patch_list {
        validate_set_order(list, order, key, &field_path, &order_path)?;
    }

    let original_list = match original.get_mut(field) {
        Some(Value::Array(list)) => Some(std::mem::take(list)),
        _ => None,
    };
    let server_order: Vec<Option<Value>> = original_list
        .iter()
        .flatten()
        .map(|v| identity(v, key).cloned())
        .collect();
    let merged = match (original_list, patch_list) {
        (None, None) => return Ok(false),
        (Some(list), None) => list,
        (None, Some(p)) => merge_list_field(Vec::new(), p, schema, &field_path)?,
        (Some(list), Some(p)) => merge_list_field(list, p, schema, &field_path)?,
    };
    if merged.iter().any(Value::is_object) {
        let key = key.ok_or_else(|| StrategicMergeError::NoMergeKey {
            path: field_path.render(),
        })?;
        for (i, item) in order.iter().enumerate() {
            if item.get(key).is_none() {
                return Err(missing_key(&order_path.index(i), key));
            }
        }
    }
    let order_idents: Vec<Option<Value>> =
        order.iter().map(|v| identity(v, key).cloned()).collect();
    let ordered = normalize_element_order(merged, &order_idents, &server_order, key);
    original.insert(field.to_string(), Value::Array(ordered));
    Ok(true)
}

/// Kubernetes' `validatePatchWithSetOrderList`: the patch list (deletions
/// and directive elements aside) must be a subsequence of the order list.
fn validate_set_order(
    patch_list: &[Value],
    order: &[Value],
    key: Option<&str>,
    field_path: &Path,
    order_path: &Path,
) -> Result<()> {
    let identity_at = |value: &Value, path: Path| -> Result<Value> {
        match key {
            None => Ok(value.clone()),
            Some(key) => value
                .get(key)
                .cloned()
                .ok_or_else(|| missing_key(&path, key)),
        }
    };
    if order.is_empty() {
        return Ok(());
    }
    let mut wanted = Vec::with_capacity(patch_list.len());
    for (i, item) in patch_list.iter().enumerate() {
        if item.get(DIRECTIVE).is_none() {
            wanted.push(identity_at(item, field_path.index(i))?);
        }
    }
    let mut next = 0;
    for (i, item) in order.iter().enumerate() {
        if next == wanted.len() {
            break;
        }
        if json_eq(&identity_at(item, order_path.index(i))?, &wanted[next]) {
            next += 1;
        }
    }
    if next < wanted.len() {
        return Err(StrategicMergeError::SetElementOrderMismatch {
            path: field_path.render(),
        });
    }
    Ok(())
}

/// `$deleteFromPrimitiveList/<field>: [values]` removes values from a
/// primitive list.
pub(super) fn delete_from_primitive_list(
    original: &mut Object,
    directive_key: &str,
    field: &str,
    deletions: &Value,
    path: &Path,
) -> Result<()> {
    let deletions = match deletions {
        Value::Null => {
            original.remove(field);
            return Ok(());
        }
        Value::Array(list) => list,
        other => {
            return Err(StrategicMergeError::DirectiveNotList {
                path: path.render(),
                directive: directive_key.to_string(),
                found: kind_name(other),
            })
        }
    };
    let Some(Value::Array(list)) = original.get_mut(field) else {
        return Ok(());
    };
    let field_path = path.key(field);
    if element_kind(list, deletions, &field_path)? == ElementKind::Objects {
        return Err(StrategicMergeError::DeleteFromNonPrimitiveList {
            path: field_path.render(),
        });
    }
    list.retain(|v| !deletions.iter().any(|d| json_eq(d, v)));
    Ok(())
}
