package verifier

import "github.com/prometheus/client_golang/prometheus"

var (
	revocationLagDesc = prometheus.NewDesc("chit_verifier_revocation_lag_seconds",
		"How far behind Chit the verifier's revocation set may be: now minus the newest server time received from the feed.", nil, nil)
	revocationsDesc = prometheus.NewDesc("chit_verifier_revocations",
		"Revocations the verifier holds (logins, principals, removed keys) whose tokens have not all expired.", nil, nil)
	revocationStaleDesc = prometheus.NewDesc("chit_verifier_revocation_feed_stale",
		"1 while the revocation set may miss revocations (no snapshot yet, resync, silence past MaxStaleness, overflow).", nil, nil)
	revocationReconnectsDesc = prometheus.NewDesc("chit_verifier_revocation_feed_reconnects_total",
		"Connections to the revocation feed after the first.", nil, nil)
	revocationMalformedDesc = prometheus.NewDesc("chit_verifier_revocation_feed_malformed_records_total",
		"Records of the revocation feed skipped because they could not be read.", nil, nil)
)

// revocationCollector reads the feed's state at each scrape.
type revocationCollector struct{ v *Verifier }

// Collector returns a Prometheus collector of the revocation feed's
// metrics: chit_verifier_revocation_lag_seconds, chit_verifier_revocations,
// chit_verifier_revocation_feed_stale, and the counters
// chit_verifier_revocation_feed_reconnects_total and
// chit_verifier_revocation_feed_malformed_records_total. It collects
// nothing for a verifier without Config.Revocations. A process with two
// subscribed verifiers registers them with distinct labels
// (prometheus.WrapRegistererWith).
func (v *Verifier) Collector() prometheus.Collector { return revocationCollector{v: v} }

func (c revocationCollector) Describe(descs chan<- *prometheus.Desc) {
	descs <- revocationLagDesc
	descs <- revocationsDesc
	descs <- revocationStaleDesc
	descs <- revocationReconnectsDesc
	descs <- revocationMalformedDesc
}

func (c revocationCollector) Collect(metrics chan<- prometheus.Metric) {
	if c.v.feed == nil {
		return
	}
	status := c.v.RevocationStatus()
	stale := 0.0
	if status.Stale {
		stale = 1
	}
	metrics <- prometheus.MustNewConstMetric(revocationLagDesc, prometheus.GaugeValue, status.Lag.Seconds())
	metrics <- prometheus.MustNewConstMetric(revocationsDesc, prometheus.GaugeValue, float64(status.Entries))
	metrics <- prometheus.MustNewConstMetric(revocationStaleDesc, prometheus.GaugeValue, stale)
	metrics <- prometheus.MustNewConstMetric(revocationReconnectsDesc, prometheus.CounterValue, float64(status.Reconnects))
	metrics <- prometheus.MustNewConstMetric(revocationMalformedDesc, prometheus.CounterValue, float64(status.Malformed))
}
