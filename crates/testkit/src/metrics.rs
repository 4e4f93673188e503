//! Reading a Prometheus text exposition.

/// The value of the sample `name{labels…}` in a Prometheus text exposition, where every label
/// given matches (the sample may carry others).
pub fn sample(exposition: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    exposition.lines().find_map(|line| {
        if line.starts_with('#') {
            return None;
        }
        let (series, value) = line.rsplit_once(' ')?;
        let (metric, label_text) = match series.split_once('{') {
            Some((metric, rest)) => (metric, rest.strip_suffix('}')?),
            None => (series, ""),
        };
        if metric != name {
            return None;
        }
        let present: Vec<(&str, &str)> = label_text
            .split("\",")
            .filter(|pair| !pair.is_empty())
            .filter_map(|pair| {
                let (key, value) = pair.split_once("=\"")?;
                Some((key, value.trim_end_matches('"')))
            })
            .collect();
        labels
            .iter()
            .all(|wanted| present.contains(wanted))
            .then(|| value.parse().ok())
            .flatten()
    })
}

/// The Prometheus text exposition at `url` (an ops listener's `/metrics`).
pub async fn scrape(http: &reqwest::Client, url: &str) -> String {
    http.get(url)
        .send()
        .await
        .expect("scrape")
        .text()
        .await
        .expect("metrics text")
}

#[cfg(test)]
mod tests {
    use super::sample;

    #[test]
    fn samples_are_found_by_name_and_labels() {
        let text = "# HELP x_total help\n\
                    x_total{a=\"1\",b=\"two\"} 3\n\
                    x_total{a=\"2\",b=\"two\"} 4\n\
                    y 5.5\n";
        assert_eq!(sample(text, "x_total", &[("a", "2")]), Some(4.0));
        assert_eq!(
            sample(text, "x_total", &[("b", "two"), ("a", "1")]),
            Some(3.0)
        );
        assert_eq!(sample(text, "x_total", &[("a", "3")]), None);
        assert_eq!(sample(text, "y", &[]), Some(5.5));
        assert_eq!(sample(text, "x", &[]), None);
    }
}
