use super::*;

fn scope() -> Scope {
    let vars = BTreeMap::from([
        ("name".to_owned(), Value::string("app")),
        ("count".to_owned(), Value::Number(3.0)),
        ("on".to_owned(), Value::Bool(true)),
        (
            "list".to_owned(),
            Value::List(vec![Value::string("a"), Value::string("b")]),
        ),
    ]);
    Scope {
        vars: Some(vars),
        failed_vars: ["broken".to_owned()].into(),
        ..Scope::default()
    }
}

fn eval(source: &str) -> std::result::Result<Value, EvalError> {
    let expr = hcl_edit::parser::parse_expr(source).expect("test expression parses");
    scope().eval(&expr)
}

fn json(source: &str) -> serde_json::Value {
    eval(source)
        .unwrap_or_else(|err| panic!("{source}: {}", err.message))
        .to_json()
}

fn err(source: &str) -> String {
    eval(source).expect_err(source).message
}

#[test]
fn literals_and_collections() {
    assert_eq!(json("null"), serde_json::json!(null));
    assert_eq!(json("[1, \"a\", true]"), serde_json::json!([1, "a", true]));
    assert_eq!(
        json("{ b = 1, \"a\" = 2 }"),
        serde_json::json!({"a": 2, "b": 1})
    );
    assert_eq!(json("{ (var.name) = 1 }"), serde_json::json!({"app": 1}));
}

#[test]
fn templates() {
    assert_eq!(
        json("\"hi ${var.name}-${var.count}\""),
        serde_json::json!("hi app-3")
    );
    assert_eq!(json("\"${var.count}\""), serde_json::json!(3));
    assert_eq!(
        json("\"$WORKDIR and $${HOME}\""),
        serde_json::json!("$WORKDIR and ${HOME}")
    );
    assert_eq!(
        json("\"%{ if var.on }yes%{ else }no%{ endif }\""),
        serde_json::json!("yes")
    );
    assert_eq!(
        json("\"%{ for x in var.list }[${x}]%{ endfor }\""),
        serde_json::json!("[a][b]")
    );
    assert_eq!(json("\"a ${~ \"b\" ~} c\""), serde_json::json!("abc"));
    assert_eq!(
        json("<<-EOT\n    one\n      two\n    EOT"),
        serde_json::json!("one\n  two\n")
    );
    assert!(err("\"x${var.list}\"").contains("cannot insert a list"));
    assert!(err("\"x${null}\"").contains("cannot insert null"));
}

#[test]
fn operators() {
    assert_eq!(json("1 + 2 * 3"), serde_json::json!(7));
    assert_eq!(json("(1 + 2) * 3"), serde_json::json!(9));
    assert_eq!(json("7 % 4"), serde_json::json!(3));
    assert_eq!(json("-var.count"), serde_json::json!(-3));
    assert_eq!(json("!var.on"), serde_json::json!(false));
    assert_eq!(
        json("var.count > 2 && var.name == \"app\""),
        serde_json::json!(true)
    );
    assert_eq!(json("1 == \"1\""), serde_json::json!(false));
    assert_eq!(json("var.on ? \"x\" : \"y\""), serde_json::json!("x"));
    assert_eq!(json("\"2\" + 1"), serde_json::json!(3));
    assert!(err("1 / 0").contains("division by zero"));
    assert!(err("\"a\" + 1").contains("expected a number"));
    assert!(err("1 ? 2 : 3").contains("expected a bool"));
}

#[test]
fn traversals_and_splats() {
    assert_eq!(json("var.list[1]"), serde_json::json!("b"));
    assert_eq!(json("var.list.0"), serde_json::json!("a"));
    assert_eq!(json("{a = {b = 1}}.a.b"), serde_json::json!(1));
    assert_eq!(json("{a = 1}[\"a\"]"), serde_json::json!(1));
    assert_eq!(json("[{n = 1}, {n = 2}][*].n"), serde_json::json!([1, 2]));
    assert_eq!(json("[{n = 1}, {n = 2}].*.n"), serde_json::json!([1, 2]));
    assert!(err("var.list[5]").contains("out of range"));
    assert!(err("var.nmae").contains("variable \"nmae\" is not declared"));
    let help = eval("var.nmae").unwrap_err().help.unwrap_or_default();
    assert!(
        help.starts_with("did you mean \"name\"? the declared variables are: "),
        "{help}"
    );
    assert!(help.contains("broken"), "{help}");
    assert!(err("{a = 1}.b").contains("unknown attribute \"b\""));
}

#[test]
fn for_expressions() {
    assert_eq!(
        json("[for s in var.list : \"${s}!\"]"),
        serde_json::json!(["a!", "b!"])
    );
    assert_eq!(
        json("[for i, s in var.list : i]"),
        serde_json::json!([0, 1])
    );
    assert_eq!(
        json("{for s in var.list : s => 1}"),
        serde_json::json!({"a": 1, "b": 1})
    );
    assert_eq!(
        json("{for s in [\"a\", \"a\", \"b\"] : s => s...}"),
        serde_json::json!({"a": ["a", "a"], "b": ["b"]})
    );
    assert_eq!(
        json("[for s in var.list : s if s != \"a\"]"),
        serde_json::json!(["b"])
    );
    assert_eq!(
        json("[for k, v in {x = 1} : \"${k}=${v}\"]"),
        serde_json::json!(["x=1"])
    );
    assert!(err("{for s in [\"a\", \"a\"] : s => 1}").contains("duplicate object key"));
    assert!(err("[for s in 3 : s]").contains("cannot iterate"));
}

#[test]
fn names_and_functions() {
    assert!(err("each.key").contains("unknown variable \"each\""));
    assert!(err("nope").contains("unknown variable \"nope\""));
    assert!(err("file(\"x\")").contains("unknown function \"file\""));
    assert!(err("foo::upper(\"x\")").contains("unknown function \"foo::upper\""));
    let defaults = Scope {
        vars: None,
        type_keywords: true,
        ..Scope::default()
    };
    let expr = hcl_edit::parser::parse_expr("string").unwrap();
    assert_eq!(defaults.eval(&expr).unwrap(), Value::string("string"));
    let expr = hcl_edit::parser::parse_expr("var.x").unwrap();
    assert!(
        defaults
            .eval(&expr)
            .unwrap_err()
            .message
            .contains("variables cannot be used here")
    );
}

#[test]
fn variables_without_a_value_are_named() {
    assert_eq!(
        err("var.broken"),
        "variable \"broken\" has no value (see the error on its declaration)"
    );
}

#[test]
fn errors_point_at_the_failing_part() {
    let source = "[1, var.nope]";
    let error = eval(source).unwrap_err();
    let span = error.span.unwrap();
    assert_eq!(&source[span], ".nope");
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    let source = format!("{}1{}", "(".repeat(200), ")".repeat(200));
    if let Ok(expr) = hcl_edit::parser::parse_expr(&source) {
        assert!(
            scope()
                .eval(&expr)
                .unwrap_err()
                .message
                .contains("nested too deeply")
        );
    }
}
