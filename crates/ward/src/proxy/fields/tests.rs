//! The field path syntax and what trimming keeps.

use serde_json::json;

use super::*;

fn trim(paths: &[&str], value: Value) -> Value {
    FieldSet::parse(paths).expect("valid paths").apply(value)
}

#[test]
fn top_level_members_are_kept_and_the_rest_dropped() {
    let value = json!({"id": 1, "name": "a", "secret": "s"});
    assert_eq!(trim(&["id", "name"], value), json!({"id": 1, "name": "a"}));
}

#[test]
fn nested_members_keep_only_the_named_branch() {
    let value = json!({"a": {"b": 1, "c": 2}, "d": 3});
    assert_eq!(trim(&["a.b"], value), json!({"a": {"b": 1}}));
}

#[test]
fn a_whole_member_wins_over_a_narrower_path() {
    let value = json!({"a": {"b": 1, "c": 2}});
    assert_eq!(trim(&["a.b", "a"], value.clone()), value);
    assert_eq!(trim(&["a", "a.b"], value.clone()), value);
}

#[test]
fn array_items_are_trimmed_each() {
    let value = json!({"items": [{"sku": "x", "price": 1}, {"sku": "y", "price": 2}], "total": 3});
    assert_eq!(
        trim(&["items[].sku", "total"], value),
        json!({"items": [{"sku": "x"}, {"sku": "y"}], "total": 3})
    );
}

#[test]
fn paths_into_the_same_array_merge() {
    let value = json!({"items": [{"sku": "x", "name": "n", "cost": 1}]});
    assert_eq!(
        trim(&["items[].sku", "items[].name"], value),
        json!({"items": [{"sku": "x", "name": "n"}]})
    );
}

#[test]
fn arrays_of_arrays_take_one_bracket_pair_per_level() {
    let value = json!({"m": [[{"x": 1, "y": 2}], [{"x": 3, "y": 4}, {"y": 5}]]});
    assert_eq!(
        trim(&["m[][].x"], value),
        json!({"m": [[{"x": 1}], [{"x": 3}, {}]]})
    );
}

#[test]
fn a_whole_array_is_kept_with_trailing_brackets_or_none() {
    let value = json!({"tags": ["a", "b"], "other": 1});
    assert_eq!(trim(&["tags"], value.clone()), json!({"tags": ["a", "b"]}));
    assert_eq!(trim(&["tags[]"], value), json!({"tags": ["a", "b"]}));
}

#[test]
fn a_top_level_array_is_stepped_into_with_leading_brackets() {
    let value = json!([{"id": 1, "pii": "p"}, {"id": 2, "pii": "q"}]);
    assert_eq!(trim(&["[].id"], value), json!([{"id": 1}, {"id": 2}]));
}

#[test]
fn missing_members_are_left_out_not_invented() {
    let value = json!({"a": {"c": 1}});
    assert_eq!(trim(&["a.b", "x", "y[].z"], value), json!({"a": {}}));
}

#[test]
fn a_value_of_the_wrong_shape_is_left_out() {
    // A scalar where members are named, an object where an array is stepped into, an array
    // where members are named: none of them passes.
    let value = json!({"a": 5, "b": {"sku": 1}, "c": [{"d": 1}], "keep": true});
    assert_eq!(
        trim(&["a.x", "b[].sku", "c.d", "keep"], value),
        json!({"keep": true})
    );
}

#[test]
fn array_items_of_the_wrong_shape_are_dropped() {
    let value = json!({"items": [{"sku": 1}, 7, "s", null, [1], {"other": 2}]});
    assert_eq!(
        trim(&["items[].sku"], value),
        json!({"items": [{"sku": 1}, {}]})
    );
}

#[test]
fn a_top_level_of_the_wrong_shape_becomes_null() {
    assert_eq!(trim(&["id"], json!([{"id": 1}])), Value::Null);
    assert_eq!(trim(&["[].id"], json!({"id": 1})), Value::Null);
    assert_eq!(trim(&["id"], json!("text")), Value::Null);
}

#[test]
fn null_at_a_named_path_is_kept_as_a_whole_value() {
    assert_eq!(trim(&["a"], json!({"a": null})), json!({"a": null}));
    assert_eq!(trim(&["a.b"], json!({"a": null})), json!({}));
}

#[test]
fn names_may_hold_any_character_but_the_syntax_ones() {
    let value = json!({"ümlaut-key_1": 1, "$ref": 2, "x": 3});
    assert_eq!(
        trim(&["ümlaut-key_1", "$ref"], value),
        json!({"ümlaut-key_1": 1, "$ref": 2})
    );
}

#[test]
fn malformed_paths_are_refused() {
    for bad in [
        "", ".", "a.", ".a", "a..b", "a[", "a]", "a[x]", "a[]b", "a[] ", "a b", "a.[]", "[",
        "a[][", "a\u{0}",
    ] {
        assert!(
            matches!(
                FieldSet::parse(&[bad]),
                Err(FieldPathError::Malformed { .. })
            ),
            "{bad:?}"
        );
    }
    assert_eq!(FieldSet::parse::<&str>(&[]), Err(FieldPathError::Empty));
}

#[test]
fn the_error_names_the_path_and_the_syntax() {
    let err = FieldSet::parse(&["ok", "a..b"]).expect_err("malformed");
    let text = err.to_string();
    assert!(
        text.starts_with("\"a..b\" is not a field path (empty name)"),
        "{text}"
    );
    assert!(text.contains("items[].sku"), "{text}");
}

#[test]
fn well_formed_paths_parse() {
    for good in [
        "a",
        "a.b.c",
        "items[]",
        "items[].sku",
        "m[][].x",
        "[]",
        "[].id",
        "[][]",
    ] {
        assert!(FieldSet::parse(&[good]).is_ok(), "{good}");
    }
}
