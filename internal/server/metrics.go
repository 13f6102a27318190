package server

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/countersign/countersign/internal/domain"
)

// Metrics are the Prometheus metrics the server exports at /metrics. It also observes request state
// changes for authz (it implements authz.Observer).
type Metrics struct {
	registry *prometheus.Registry
	http     *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	requests *prometheus.CounterVec
	// OnOutbox is called when authz enqueues an outbox message (the notifier wakes up on it).
	OnOutbox func()
}

// NewMetrics registers the metrics in reg, with the Go and process collectors.
func NewMetrics(reg *prometheus.Registry) *Metrics {
	m := &Metrics{
		registry: reg,
		http: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "countersign_http_requests_total", Help: "HTTP requests by route and status code.",
		}, []string{"route", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "countersign_http_request_duration_seconds", Help: "HTTP request latency by route.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 5, 30},
		}, []string{"route"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "countersign_backchannel_requests_total", Help: "Backchannel request state changes by resulting state.",
		}, []string{"state"}),
	}
	reg.MustRegister(m.http, m.latency, m.requests,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Registry returns the registry the metrics live in.
func (m *Metrics) Registry() *prometheus.Registry { return m.registry }

func (m *Metrics) observeHTTP(route string, status int, d time.Duration) {
	if route == "" {
		route = "unmatched"
	}
	m.http.WithLabelValues(route, strconv.Itoa(status)).Inc()
	m.latency.WithLabelValues(route).Observe(d.Seconds())
}

// RequestChanged counts a request entering a state (redeemed counts separately from approved).
func (m *Metrics) RequestChanged(r domain.Request) {
	state := string(r.Status)
	if !r.RedeemedAt.IsZero() {
		state = "redeemed"
	}
	m.requests.WithLabelValues(state).Inc()
}

// OutboxEnqueued wakes the notifier, if one is attached.
func (m *Metrics) OutboxEnqueued() {
	if m.OnOutbox != nil {
		m.OnOutbox()
	}
}
