//! The configs as their own tools read them: promtool and amtool.

use std::process::Command;

use stormproof_e2e::{repo, tool};

fn run(program: &str, args: &[&str]) -> String {
    let output = Command::new(tool(&[program]))
        .args(args)
        .current_dir(repo())
        .output()
        .unwrap_or_else(|error| panic!("{program} does not run: {error}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "{program} {args:?} failed:\n{text}"
    );
    text
}

#[test]
fn promtool_accepts_the_config_and_the_rules_and_every_rule_unit_test_passes() {
    // `check config` also checks the rule files it names.
    let checked = run(
        "promtool",
        &["check", "config", "prometheus/prometheus.yml"],
    );
    assert!(
        checked.contains("rules/alerts.yml") && checked.contains("rules/recording.yml"),
        "{checked}"
    );
    let tests: Vec<String> = std::fs::read_dir(repo().join("prometheus/tests"))
        .expect("prometheus/tests")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yml"))
        .map(|path| path.display().to_string())
        .collect();
    assert!(tests.len() >= 2, "{tests:?}");
    let mut args = vec!["test", "rules"];
    args.extend(tests.iter().map(String::as_str));
    let tested = run("promtool", &args);
    assert!(!tested.contains("FAILED"), "{tested}");
}

/// compose.yaml mounts prometheus/compose/targets/ over targets/: the same config must accept
/// those files (promtool reads the file_sd files a config names).
#[test]
fn promtool_accepts_the_config_with_the_compose_targets() {
    let dir = tempfile::tempdir().expect("tempdir");
    let prometheus = repo().join("prometheus");
    std::fs::copy(
        prometheus.join("prometheus.yml"),
        dir.path().join("prometheus.yml"),
    )
    .expect("copy prometheus.yml");
    for (from, to) in [("rules", "rules"), ("compose/targets", "targets")] {
        std::fs::create_dir(dir.path().join(to)).expect("mkdir");
        for entry in std::fs::read_dir(prometheus.join(from)).expect(from) {
            let path = entry.expect("entry").path();
            let name = path.file_name().expect("file name");
            std::fs::copy(&path, dir.path().join(to).join(name)).expect("copy");
        }
    }
    let config = dir.path().join("prometheus.yml");
    let checked = run(
        "promtool",
        &["check", "config", config.to_str().expect("utf-8 path")],
    );
    assert!(checked.contains("is valid prometheus config"), "{checked}");
}

/// Every alert has a unit test in which it fires (the same tests hold a series that must not
/// fire it).
#[test]
fn every_alert_fires_in_a_unit_test() {
    let alerts =
        std::fs::read_to_string(repo().join("prometheus/rules/alerts.yml")).expect("alerts.yml");
    let tests = std::fs::read_to_string(repo().join("prometheus/tests/alerts.test.yml"))
        .expect("alerts.test.yml");
    let names: std::collections::BTreeSet<&str> = alerts
        .lines()
        .filter_map(|line| line.trim().strip_prefix("- alert: "))
        .collect();
    assert_eq!(names.len(), 12, "{names:?}");
    let lines: Vec<&str> = tests.lines().map(str::trim).collect();
    for name in names {
        let fires = lines.windows(3).any(|window| {
            window[0] == format!("alertname: {name}")
                && window[1] == "exp_alerts:"
                && window[2].starts_with("- exp_labels:")
        });
        assert!(
            fires,
            "no unit test in prometheus/tests/alerts.test.yml fires {name}"
        );
    }
}

#[test]
fn amtool_accepts_the_alertmanager_configs_and_routes_by_severity() {
    run("amtool", &["check-config", "prometheus/alertmanager.yml"]);
    // compose.yaml's: the same routes, webhooks on the Docker host. A webhook on loopback
    // there would call the Alertmanager container itself.
    let compose = run(
        "amtool",
        &["check-config", "prometheus/compose/alertmanager.yml"],
    );
    assert!(compose.contains("2 receivers"), "{compose}");
    let text = std::fs::read_to_string(repo().join("prometheus/compose/alertmanager.yml"))
        .expect("compose alertmanager.yml");
    let urls: Vec<&str> = text
        .lines()
        .filter_map(|line| line.trim().strip_prefix("- url: "))
        .collect();
    assert_eq!(urls.len(), 2, "{urls:?}");
    for url in urls {
        assert!(
            url.starts_with("http://host.docker.internal:"),
            "compose Alertmanager webhook {url} does not reach the host"
        );
    }
    for (labels, receiver) in [
        ("severity=critical", "page"),
        ("severity=warning", "ticket"),
        ("alertname=Unlabelled", "ticket"),
    ] {
        let routed = run(
            "amtool",
            &[
                "config",
                "routes",
                "test",
                "--config.file",
                "prometheus/alertmanager.yml",
                labels,
            ],
        );
        assert_eq!(
            routed.lines().next().map(str::trim),
            Some(receiver),
            "{labels}: {routed}"
        );
    }
}
