//! End-to-end tests: the repo's Prometheus, Alertmanager and Grafana configs against the real
//! services. They need Debian's `prometheus` and `prometheus-alertmanager` (promtool and amtool
//! come with them), which .ci/run installs.

mod configs;
mod observability;
