//! Just enough PromQL reading to name what an expression depends on: the metric selectors
//! (name and label matchers) and the labels it groups or matches by. The live tests ask
//! Prometheus whether each exists, so that a dashboard or rule naming a metric or label the
//! services do not export fails with that name, even where the whole expression may be empty.

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

const KEYWORDS: &[&str] = &[
    "and",
    "or",
    "unless",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "offset",
    "inf",
    "nan",
    "atan2",
];
const GROUPING: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

/// The selectors and grouping labels of `expr` (Grafana variables already substituted).
pub fn dependencies(expr: &str) -> Dependencies {
    let chars: Vec<char> = expr.chars().collect();
    let mut found = Dependencies::default();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == '\'' || c == '`' {
            i = skip_string(&chars, i);
        } else if c == '[' {
            // a range or subquery duration
            while i < chars.len() && chars[i] != ']' {
                i += 1;
            }
            i += 1;
        } else if c.is_ascii_digit()
            || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit))
        {
            // a number (1e-9, 0.99, 0x1f) or a duration after `offset`
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
            if chars.get(i - 1).is_some_and(|c| *c == 'e' || *c == 'E')
                && chars.get(i).is_some_and(|c| *c == '-' || *c == '+')
            {
                i += 1;
                while i < chars.len() && chars[i].is_ascii_digit() {
                    i += 1;
                }
            }
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
            {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let next = skip_space(&chars, i);
            if GROUPING.contains(&word.as_str()) {
                if chars.get(next) == Some(&'(') {
                    let end = find(&chars, next, ')');
                    let inside: String = chars[next + 1..end].iter().collect();
                    found.grouping.extend(
                        inside
                            .split(',')
                            .map(str::trim)
                            .filter(|label| !label.is_empty())
                            .map(str::to_owned),
                    );
                    i = end + 1;
                }
            } else if KEYWORDS.contains(&word.as_str())
                || chars.get(next) == Some(&'(')
                || ["by", "without"].contains(&word_at(&chars, next).as_str())
            {
                // an operator, or a function or aggregation name (`sum by (..) (..)`)
            } else if chars.get(next) == Some(&'{') {
                let end = find_closing_brace(&chars, next);
                let inside: String = chars[next + 1..end].iter().collect();
                found.selectors.push(Selector {
                    metric: word,
                    matchers: matchers(&inside),
                });
                i = end + 1;
            } else {
                found.selectors.push(Selector {
                    metric: word,
                    matchers: Vec::new(),
                });
            }
        } else if c == '{' {
            // a selector without a metric name
            i = find_closing_brace(&chars, i) + 1;
        } else {
            i += 1;
        }
    }
    found
}

fn word_at(chars: &[char], from: usize) -> String {
    chars[from.min(chars.len())..]
        .iter()
        .take_while(|c| c.is_ascii_alphanumeric() || **c == '_')
        .collect()
}

fn skip_space(chars: &[char], mut i: usize) -> usize {
    while chars.get(i).is_some_and(|c| c.is_whitespace()) {
        i += 1;
    }
    i
}

fn skip_string(chars: &[char], start: usize) -> usize {
    let quote = chars[start];
    let mut i = start + 1;
    while i < chars.len() && chars[i] != quote {
        if chars[i] == '\\' {
            i += 1;
        }
        i += 1;
    }
    i + 1
}

fn find(chars: &[char], from: usize, wanted: char) -> usize {
    (from..chars.len())
        .find(|&i| chars[i] == wanted)
        .unwrap_or(chars.len().saturating_sub(1))
}

fn find_closing_brace(chars: &[char], open: usize) -> usize {
    let mut i = open + 1;
    while i < chars.len() && chars[i] != '}' {
        if chars[i] == '"' || chars[i] == '\'' || chars[i] == '`' {
            i = skip_string(chars, i);
        } else {
            i += 1;
        }
    }
    i.min(chars.len().saturating_sub(1))
}

fn matchers(inside: &str) -> Vec<Matcher> {
    let chars: Vec<char> = inside.chars().collect();
    let mut found = Vec::new();
    let mut i = 0;
    loop {
        i = skip_space(&chars, i);
        let start = i;
        while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
            i += 1;
        }
        if start == i {
            break;
        }
        let label: String = chars[start..i].iter().collect();
        i = skip_space(&chars, i);
        let op_start = i;
        while i < chars.len() && matches!(chars[i], '=' | '!' | '~') {
            i += 1;
        }
        let op: String = chars[op_start..i].iter().collect();
        i = skip_space(&chars, i);
        let value_end = skip_string(&chars, i);
        let value: String = chars
            [(i + 1).min(chars.len())..value_end.saturating_sub(1).min(chars.len())]
            .iter()
            .collect();
        found.push(Matcher {
            label,
            op,
            value: value.replace("\\\\", "\\"),
        });
        i = skip_space(&chars, value_end);
        if chars.get(i) == Some(&',') {
            i += 1;
        }
    }
    found
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
        );
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
            r#"label_replace(vector(1e-9), "job", "order", "", "") + 2 * circuit_breaker_state{state!="a,b}"} [1h:5m]"#,
        );
        assert_eq!(
            found.selectors,
            vec![selector(
                "circuit_breaker_state",
                &[("state", "!=", "a,b}")]
            )]
        );
        assert!(found.grouping.is_empty());
    }
}
