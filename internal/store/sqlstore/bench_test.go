package sqlstore_test

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/countersign/countersign/internal/domain"
	"github.com/countersign/countersign/internal/store/sqlstore"
)

// writers is how many goroutines write at once in the parallel write benchmarks, as many concurrent
// HTTP requests would: group commit needs callers waiting to batch them.
const writers = 128

func openBench(b *testing.B, synchronous string) *sqlstore.Store {
	b.Helper()
	s, err := sqlstore.OpenSQLite(b.Context(), filepath.Join(b.TempDir(), "bench.db"), sqlstore.SQLiteOptions{Synchronous: synchronous})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	ctx := context.Background()
	if err := s.PutUser(ctx, domain.User{Subject: "alice", Email: "alice@example.com"}); err != nil {
		b.Fatal(err)
	}
	if err := s.PutClient(ctx, domain.Client{
		ID: "agent", Name: "Trading agent", SecretHash: hash("agent", 0), DeliveryMode: domain.DeliveryPoll,
		GrantTypes: []string{"urn:openid:params:grant-type:ciba"}, Scopes: []string{"openid", "trade:write"},
		AuthorizationDetailsTypes: []string{"trade"},
	}); err != nil {
		b.Fatal(err)
	}
	return s
}

func hash(prefix string, i int64) []byte {
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(i))
	sum := sha256.Sum256(append([]byte(prefix), n[:]...))
	return sum[:]
}

var benchTime = time.Date(2031, 1, 2, 3, 4, 5, 0, time.UTC)

func benchRequest(i int64) domain.Request {
	return domain.Request{
		ID: fmt.Sprintf("req-%d", i), AuthReqIDHash: hash("auth-req-id", i), ClientID: "agent", ClientName: "Trading agent",
		Subject: "alice", Scope: []string{"openid", "trade:write"}, Audience: []string{"https://api.tradepro.example"},
		BindingMessage:       "Buy 100 ACME at 12.50",
		AuthorizationDetails: json.RawMessage(`[{"type":"trade","symbol":"ACME","side":"buy","quantity":100,"limit_price":"12.50"}]`),
		DeliveryMode:         domain.DeliveryPoll, Status: domain.StatusPending,
		CreatedAt: benchTime, ExpiresAt: benchTime.Add(5 * time.Minute), Interval: 5 * time.Second,
	}
}

func reportRate(b *testing.B, unit string, ops int) {
	b.ReportMetric(float64(ops)/b.Elapsed().Seconds(), unit)
}

func reportBatching(b *testing.B, s *sqlstore.Store, before sqlstore.WriterStats) {
	after := s.WriterStats()
	if commits := after.Commits - before.Commits; commits > 0 {
		b.ReportMetric(float64(after.Units-before.Units)/float64(commits), "units/commit")
	}
}

// BenchmarkCreateRequestParallel measures durable (synchronous=full) inserts from many goroutines:
// the writer batches them into shared commits.
func BenchmarkCreateRequestParallel(b *testing.B) {
	for _, sync := range []string{"full", "normal"} {
		b.Run("synchronous="+sync, func(b *testing.B) {
			s := openBench(b, sync)
			var n atomic.Int64
			before := s.WriterStats()
			b.SetParallelism(writers)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				ctx := context.Background()
				for pb.Next() {
					if err := s.CreateRequest(ctx, benchRequest(n.Add(1))); err != nil {
						b.Error(err)
						return
					}
				}
			})
			reportRate(b, "ops/s", b.N)
			reportBatching(b, s, before)
		})
	}
}

// BenchmarkCreateRequestSerial is the same insert from one goroutine: each waits for its own
// commit, which shows what a commit costs on this machine.
func BenchmarkCreateRequestSerial(b *testing.B) {
	s := openBench(b, "full")
	ctx := context.Background()
	b.ResetTimer()
	for i := range b.N {
		if err := s.CreateRequest(ctx, benchRequest(int64(i))); err != nil {
			b.Fatal(err)
		}
	}
	reportRate(b, "ops/s", b.N)
}

// BenchmarkApprovalFlowParallel runs complete approval flows, each three write transactions as the
// use cases do them: create the request with its audit event and notification; approve it with its
// audit event; redeem it, record the token and its audit event.
func BenchmarkApprovalFlowParallel(b *testing.B) {
	s := openBench(b, "full")
	var n atomic.Int64
	before := s.WriterStats()
	b.SetParallelism(writers)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			if err := approvalFlow(ctx, s, n.Add(1)); err != nil {
				b.Error(err)
				return
			}
		}
	})
	reportRate(b, "flows/s", b.N)
	reportBatching(b, s, before)
}

func approvalFlow(ctx context.Context, s domain.Store, i int64) error {
	r := benchRequest(i)
	now := benchTime.Add(time.Second)
	if err := s.InTx(ctx, func(tx domain.Store) error {
		if err := tx.CreateRequest(ctx, r); err != nil {
			return err
		}
		if err := tx.AppendAudit(ctx, domain.AuditEvent{Time: now, Type: domain.AuditRequestCreated, Subject: r.Subject, ClientID: r.ClientID, RequestID: r.ID}); err != nil {
			return err
		}
		_, err := tx.EnqueueOutbox(ctx, domain.OutboxMessage{Kind: "notify.webpush", RequestID: r.ID, Target: "alice", CreatedAt: now})
		return err
	}); err != nil {
		return err
	}
	if err := s.InTx(ctx, func(tx domain.Store) error {
		if _, err := tx.UpdateRequest(ctx, r.ID, func(r *domain.Request) error {
			return r.Approve(now, domain.Receipt{DeviceID: "dev", Decision: domain.DecisionApprove, ShownSHA256: hash("shown", i), Signature: "sig", DecidedAt: now})
		}); err != nil {
			return err
		}
		return tx.AppendAudit(ctx, domain.AuditEvent{Time: now, Type: domain.AuditRequestApproved, Subject: r.Subject, RequestID: r.ID})
	}); err != nil {
		return err
	}
	return s.InTx(ctx, func(tx domain.Store) error {
		if _, err := tx.UpdateRequest(ctx, r.ID, func(r *domain.Request) error { return r.Redeem(now, "agent") }); err != nil {
			return err
		}
		if err := tx.CreateToken(ctx, domain.Token{ID: "jti-" + r.ID, Kind: domain.TokenAccess, ClientID: "agent", Subject: "alice", RequestID: r.ID, IssuedAt: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
			return err
		}
		return tx.AppendAudit(ctx, domain.AuditEvent{Time: now, Type: domain.AuditRequestRedeemed, Subject: r.Subject, RequestID: r.ID})
	})
}

// BenchmarkGetRequestByAuthReqID measures the token endpoint's lookup, run on every poll, from as
// many goroutines as there are CPUs.
func BenchmarkGetRequestByAuthReqID(b *testing.B) {
	s := openBench(b, "full")
	const stored = 10000
	ctx := context.Background()
	hashes := make([][]byte, stored)
	if err := s.InTx(ctx, func(tx domain.Store) error {
		for i := range int64(stored) {
			hashes[i] = hash("auth-req-id", i)
			if err := tx.CreateRequest(ctx, benchRequest(i)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	var n atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.GetRequestByAuthReqID(ctx, hashes[n.Add(1)%stored]); err != nil {
				b.Error(err)
				return
			}
		}
	})
	reportRate(b, "ops/s", b.N)
}

// BenchmarkGetClient measures the client lookup every token request makes.
func BenchmarkGetClient(b *testing.B) {
	s := openBench(b, "full")
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.GetClient(ctx, "agent"); err != nil {
				b.Error(err)
				return
			}
		}
	})
	reportRate(b, "ops/s", b.N)
}
