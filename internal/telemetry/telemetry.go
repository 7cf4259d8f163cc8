// Package telemetry holds Chit's Prometheus metrics: per-RPC counts, codes and
// latencies for both transports, tokens issued by kind, refresh token reuse,
// throttled sign-ins, Shared Signals pushes and signing key age. The core reports events through the
// small interfaces it defines; this package implements them.
package telemetry

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics is one server's set of collectors, on its own registry.
type Metrics struct {
	registry     *prometheus.Registry
	rpcs         *prometheus.CounterVec
	rpcLatency   *prometheus.HistogramVec
	tokensIssued *prometheus.CounterVec
	reuse        prometheus.Counter
	throttled    prometheus.Counter
	store        *prometheus.HistogramVec
	ssfPushes    *prometheus.CounterVec
}

// New registers the collectors; keyAge reports how long the signing key has
// been active.
func New(keyAge func() time.Duration) *Metrics {
	m := &Metrics{
		registry: prometheus.NewRegistry(),
		rpcs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chit_rpc_requests_total", Help: "Calls handled, by transport (grpc or rest), method and gRPC code.",
		}, []string{"transport", "method", "code"}),
		rpcLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "chit_rpc_duration_seconds", Help: "Call latency by transport and method.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"transport", "method"}),
		tokensIssued: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chit_tokens_issued_total", Help: "Access tokens issued, by kind (password, client_credentials, refresh, authorization_code, api_key, jwt_bearer, provider, provider_orchestrator).",
		}, []string{"kind"}),
		reuse: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chit_refresh_reuse_detected_total", Help: "Rotated refresh tokens presented after the grace period (their logins were revoked).",
		}),
		throttled: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chit_signins_throttled_total", Help: "Sign-ins refused with RESOURCE_EXHAUSTED (throttling or a full hashing queue).",
		}),
		store: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "chit_store_duration_seconds", Help: "Store operation latency by operation.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1},
		}, []string{"operation"}),
		ssfPushes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chit_ssf_pushes_total", Help: "SETs pushed to Shared Signals receivers, by stream and outcome (delivered, refused: a 400 with an RFC 8935 error, failed: retried).",
		}, []string{"stream", "outcome"}),
	}
	m.registry.MustRegister(m.rpcs, m.rpcLatency, m.tokensIssued, m.reuse, m.throttled, m.store, m.ssfPushes,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "chit_signing_key_age_seconds", Help: "How long the signing key has been active.",
		}, func() float64 { return keyAge().Seconds() }))
	return m
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{})
}

// ObserveRPC records one call.
func (m *Metrics) ObserveRPC(transport, method, code string, took time.Duration) {
	m.rpcs.WithLabelValues(transport, method, code).Inc()
	m.rpcLatency.WithLabelValues(transport, method).Observe(took.Seconds())
}

// TokenIssued counts an issued access token of kind.
func (m *Metrics) TokenIssued(kind string) { m.tokensIssued.WithLabelValues(kind).Inc() }

// RefreshReuseDetected counts a detected reuse.
func (m *Metrics) RefreshReuseDetected() { m.reuse.Inc() }

// SignInThrottled counts a refused sign-in.
func (m *Metrics) SignInThrottled() { m.throttled.Inc() }

// SecurityEventPushed counts one push of a SET to stream's receiver
// (ssf.Events), by its outcome.
func (m *Metrics) SecurityEventPushed(stream, outcome string) {
	m.ssfPushes.WithLabelValues(stream, outcome).Inc()
}

// ObserveStore records one store operation.
func (m *Metrics) ObserveStore(operation string, took time.Duration) {
	m.store.WithLabelValues(operation).Observe(took.Seconds())
}
