//! What a PromQL expression depends on: the metric selectors (name and label matchers) and
//! the labels it groups or matches by, read from `promql-parser`'s syntax tree. The live tests
//! ask Prometheus whether each exists, so that a dashboard or rule naming a metric or label the
//! services do not export fails with that name, even where the whole expression may be empty.

use promql_parser::{
    label::{METRIC_NAME, MatchOp, Matchers},
    parser::{self, BinModifier, Expr, LabelModifier, VectorMatchCardinality, VectorSelector},
};

/// A label matcher of a selector: `label op "value"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matcher {
    pub label: String,
    /// `=`, `!=`, `=~` or `!~`.
    pub op: String,
    pub value: String,
}

/// A vector selector with a metric name: `name{matchers}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    pub metric: String,
    pub matchers: Vec<Matcher>,
}

/// What an expression reads.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Dependencies {
    pub selectors: Vec<Selector>,
    /// Labels of `by`, `without`, `on`, `ignoring`, `group_left` and `group_right` clauses.
    pub grouping: Vec<String>,
}

/// The selectors and grouping labels of `expr` (Grafana variables already substituted), in
/// the order they are written; or why it is not PromQL.
pub fn dependencies(expr: &str) -> Result<Dependencies, String> {
    let mut found = Dependencies::default();
    walk(&parser::parse(expr)?, &mut found);
    Ok(found)
}

fn walk(expr: &Expr, found: &mut Dependencies) {
    match expr {
        Expr::Aggregate(aggregate) => {
            if let Some(modifier) = &aggregate.modifier {
                grouping(modifier, found);
            }
            if let Some(param) = &aggregate.param {
                walk(param, found);
            }
            walk(&aggregate.expr, found);
        }
        Expr::Binary(binary) => {
            walk(&binary.lhs, found);
            if let Some(modifier) = &binary.modifier {
                matching(modifier, found);
            }
            walk(&binary.rhs, found);
        }
        Expr::Unary(unary) => walk(&unary.expr, found),
        Expr::Paren(paren) => walk(&paren.expr, found),
        Expr::Subquery(subquery) => walk(&subquery.expr, found),
        Expr::Call(call) => call.args.args.iter().for_each(|arg| walk(arg, found)),
        Expr::VectorSelector(selector) => select(selector, found),
        Expr::MatrixSelector(matrix) => select(&matrix.vs, found),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
    }
}

fn grouping(modifier: &LabelModifier, found: &mut Dependencies) {
    let (LabelModifier::Include(labels) | LabelModifier::Exclude(labels)) = modifier;
    found.grouping.extend(labels.labels.iter().cloned());
}

fn matching(modifier: &BinModifier, found: &mut Dependencies) {
    if let Some(matching) = &modifier.matching {
        grouping(matching, found);
    }
    if let VectorMatchCardinality::ManyToOne(labels) | VectorMatchCardinality::OneToMany(labels) =
        &modifier.card
    {
        found.grouping.extend(labels.labels.iter().cloned());
    }
}

/// A selector with its metric name (written before the braces, or as `__name__="…"`); one
/// whose name is only a pattern names no metric to look for.
fn select(selector: &VectorSelector, found: &mut Dependencies) {
    let matchers = all_matchers(&selector.matchers);
    let named = matchers
        .iter()
        .find(|m| m.name == METRIC_NAME && m.op == MatchOp::Equal)
        .map(|m| m.value.clone());
    let Some(metric) = selector.name.clone().or(named) else {
        return;
    };
    let matchers = matchers
        .into_iter()
        .filter(|m| m.name != METRIC_NAME)
        .map(|m| Matcher {
            label: m.name.clone(),
            op: match m.op {
                MatchOp::Equal => "=",
                MatchOp::NotEqual => "!=",
                MatchOp::Re(_) => "=~",
                MatchOp::NotRe(_) => "!~",
            }
            .to_owned(),
            value: m.value.clone(),
        })
        .collect();
    found.selectors.push(Selector { metric, matchers });
}

/// Every matcher of a selector, those of `or` alternatives too.
fn all_matchers(matchers: &Matchers) -> Vec<&promql_parser::label::Matcher> {
    matchers
        .matchers
        .iter()
        .chain(matchers.or_matchers.iter().flatten())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn selector(metric: &str, matchers: &[(&str, &str, &str)]) -> Selector {
        Selector {
            metric: metric.to_owned(),
            matchers: matchers
                .iter()
                .map(|(label, op, value)| Matcher {
                    label: (*label).to_owned(),
                    op: (*op).to_owned(),
                    value: (*value).to_owned(),
                })
                .collect(),
        }
    }

    #[test]
    fn reads_selectors_and_grouping_through_functions_and_operators() {
        let found = dependencies(
            r#"histogram_quantile(0.99, sum by (job, le) (rate(http_server_request_duration_seconds_bucket{job="order", http_route=~"/v1/.+"}[5m]))) > 0.3
               and on (job) up offset 5m / ignoring(state) group_left (dependency) x:y:z"#,
        )
        .expect("PromQL");
        assert_eq!(
            found.selectors,
            vec![
                selector(
                    "http_server_request_duration_seconds_bucket",
                    &[("job", "=", "order"), ("http_route", "=~", "/v1/.+")]
                ),
                selector("up", &[]),
                selector("x:y:z", &[]),
            ]
        );
        assert_eq!(found.grouping, ["job", "le", "job", "state", "dependency"]);
    }

    #[test]
    fn skips_strings_numbers_and_durations() {
        let found = dependencies(
            // (a subquery inside a function: a bare one beside `*` is a range vector, which
            // Prometheus refuses, and so does the parser)
            r#"label_replace(vector(1e-9), "job", "order", "", "") + 2 * max_over_time(circuit_breaker_state{state!="a,b}"} [1h:5m])"#,
        )
        .expect("PromQL");
        assert_eq!(
            found.selectors,
            vec![selector(
                "circuit_breaker_state",
                &[("state", "!=", "a,b}")]
            )]
        );
        assert!(found.grouping.is_empty());
    }

    #[test]
    fn a_name_matcher_names_the_metric_and_broken_promql_is_refused() {
        let found =
            dependencies(r#"{__name__="up", job="order"} or {__name__=~"x.+"}"#).expect("PromQL");
        assert_eq!(
            found.selectors,
            vec![selector("up", &[("job", "=", "order")])]
        );
        let refused = dependencies("sum(rate(up[5m])").expect_err("unbalanced");
        assert!(!refused.is_empty());
    }
}
