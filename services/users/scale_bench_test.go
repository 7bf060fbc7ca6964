package users_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/oklog/ulid/v2"

	"github.com/devloop/switchboard/internal/benchload"
	"github.com/devloop/switchboard/messaging"
	"github.com/devloop/switchboard/services/users/contract"
	"github.com/devloop/switchboard/wire"
)

// benchScaleEnv names the variable that turns BenchmarkUsersScale on: "1"
// for the default sizes, or a comma-separated list of sizes.
const benchScaleEnv = "SWITCHBOARD_BENCH_SCALE"

// BenchmarkUsersScale measures how users.create and users.get, the memory
// and the start-up of a `switchboard run users` process change as the
// store grows: 0, 100,000 and 1,000,000 stored users by default, in the
// three-process deployment of BenchmarkUsers (a nats-server process, the
// service, and this process as the load generator). Between sizes the
// store is filled by publishing users directly into the USERS stream in
// the layout the users service writes (fillUsers), and the service is
// started afresh, so ready-ms is its start-up on a store of that size.
// At each size it reports:
//
//   - ready-ms: from starting the process to its ready banner;
//   - rss-MiB, peak-rss-MiB: its resident memory after the load, and the
//     most it had (VmRSS, VmHWM);
//   - create-ops/s (c=16), get-hot-ops/s (one key, c=128) and
//     get-spread-ops/s (keys drawn uniformly from every stored user,
//     c=128, so mostly cache misses past the in-process cache's 50,000
//     entries), with their p99;
//   - the same throughputs over those of the empty store (…-vs-empty),
//     goal 4 of issue 12;
//   - fill-users/s: how fast the fill before this size stored users.
//
// It takes minutes and a few GB of disk, so it runs only when
// SWITCHBOARD_BENCH_SCALE is set (task bench:scale):
//
//	SWITCHBOARD_BENCH_SCALE=1 go test -run '^$' -bench UsersScale -benchtime 1x -timeout 60m ./services/users/
//	SWITCHBOARD_BENCH_SCALE=0,10000 go test …   # other sizes
func BenchmarkUsersScale(b *testing.B) {
	sizes, err := benchScaleSizes(os.Getenv(benchScaleEnv))
	if err != nil {
		b.Fatal(err)
	}
	if sizes == nil {
		b.Skipf("set %s=1 to run (task bench:scale): it fills a store with up to 1,000,000 users and takes minutes", benchScaleEnv)
	}
	dir := b.TempDir()
	nsBin, err := benchBuild(dir, "github.com/nats-io/nats-server/v2")
	if err != nil {
		b.Fatal(err)
	}
	sbBin, err := benchBuild(dir, "github.com/devloop/switchboard/cmd/switchboard")
	if err != nil {
		b.Fatal(err)
	}
	ns, url, err := benchStartNATS(b, nsBin, filepath.Join(dir, "nats"))
	if err != nil {
		b.Fatal(err)
	}
	nc, err := nats.Connect(url, nats.Name("bench-client"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(nc.Close)
	client, err := messaging.NewClient(nc, messaging.WithTimeout(10*time.Second))
	if err != nil {
		b.Fatal(err)
	}

	var (
		ids    []string     // every stored user, filled or created
		emails atomic.Int64 // numbers the emails of created users
		empty  map[string]float64
	)
	for i, size := range sizes {
		if i == 0 && size != 0 {
			b.Fatalf("%s: the first size must be 0 (the first start creates the stream)", benchScaleEnv)
		}
		fillRate := 0.0 // users/s of the fill before this size
		if size > len(ids) {
			start := time.Now()
			filled, err := fillUsers(b.Context(), nc, len(ids), size-len(ids))
			if err != nil {
				b.Fatalf("fill to %d users: %v", size, err)
			}
			ids = append(ids, filled...)
			fillRate = float64(len(filled)) / time.Since(start).Seconds()
		}
		b.Run(fmt.Sprintf("users=%d", size), func(b *testing.B) {
			sb, _, err := benchRunUsers(b, sbBin, url, filepath.Join(dir, "data"))
			if err != nil {
				b.Fatal(err)
			}
			defer func() {
				if err := sb.Stop(); err != nil {
					b.Error(err)
				}
			}()
			got := map[string]float64{"ready-ms": float64(sb.ready) / float64(time.Millisecond)}
			if fillRate > 0 {
				got["fill-users/s"] = fillRate
			}
			cpu := benchSumCPU(ns, sb)
			ctx := b.Context()
			if len(ids) > 0 {
				if err := checkFilled(ctx, client, ids[len(ids)/2]); err != nil {
					b.Fatal(err)
				}
			}
			age := 36
			measure := func(name string, c, n int, call func(context.Context) error) {
				f, err := benchload.Measure(ctx, c, n, call, cpu)
				if err != nil {
					b.Fatalf("%s: %v", name, err)
				}
				got[name+"-ops/s"] = f.OpsPerSec
				got[name+"-p99-µs"] = benchload.Micros(f.P99)
				got[name+"-cpu-µs/op"] = benchload.Micros(f.CPUPerOp)
			}
			createdNow := make(chan string, 3000)
			measure("create", 16, cap(createdNow), func(ctx context.Context) error {
				email := fmt.Sprintf("create-%d@example.com", emails.Add(1))
				u, err := contract.CreateUser(ctx, client, contract.CreateRequest{Name: "Bench User", Email: email, Age: &age})
				if err == nil {
					createdNow <- u.ID
				}
				return err
			})
			close(createdNow)
			for id := range createdNow {
				ids = append(ids, id)
			}
			hot := ids[len(ids)-1]
			get := func(id func() string) func(context.Context) error {
				return func(ctx context.Context) error {
					want := id()
					u, err := contract.GetUser(ctx, client, contract.GetRequest{ID: want})
					if err == nil && u.ID != want {
						err = fmt.Errorf("get %s: got %s", want, u.ID)
					}
					return err
				}
			}
			measure("get-hot", 128, 30000, get(func() string { return hot }))
			all := ids
			measure("get-spread", 128, 30000, get(func() string { return all[rand.IntN(len(all))] }))
			got["rss-MiB"], got["peak-rss-MiB"] = sb.RSS()
			if empty == nil {
				empty = got
			}
			for _, name := range []string{"create", "get-hot", "get-spread"} {
				got[name+"-vs-empty"] = got[name+"-ops/s"] / empty[name+"-ops/s"]
			}
			b.ReportMetric(0, "ns/op")
			for unit, v := range got {
				b.ReportMetric(v, unit)
			}
		})
	}
}

// benchScaleSizes reads SWITCHBOARD_BENCH_SCALE: "" is nil (skip), "1"
// the default sizes, else a comma-separated list of ascending sizes.
func benchScaleSizes(v string) ([]int, error) {
	switch v {
	case "":
		return nil, nil
	case "1":
		return []int{0, 100_000, 1_000_000}, nil
	}
	var sizes []int
	for _, f := range strings.Split(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 0 || (len(sizes) > 0 && n <= sizes[len(sizes)-1]) {
			return nil, fmt.Errorf("%s=%q: want 1 or ascending sizes such as 0,10000", benchScaleEnv, v)
		}
		sizes = append(sizes, n)
	}
	return sizes, nil
}

// fillUsers publishes n users (numbered from first) into the USERS
// stream, asynchronously, in the layout the users service writes through
// the event store (eventstore/write.go): for each user its listing entry
// (users.internal.index._all.<id>), the claim of its email
// (users.internal.unique.email.<hash>, {"owner":id}) and its created event
// (users.events.<id>, built by messaging.Publisher.Msg as the store's
// commit builds it). checkFilled proves the layout is right: the service
// reads a filled user and refuses its email to a new one. It returns the
// ids, in creation order.
func fillUsers(ctx context.Context, nc *nats.Conn, first, n int) ([]string, error) {
	var failed struct {
		n   int
		err error
	}
	errs := make(chan error, 1)
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096),
		jetstream.WithPublishAsyncErrHandler(func(_ jetstream.JetStream, _ *nats.Msg, err error) {
			select {
			case errs <- err:
			default:
			}
		}))
	if err != nil {
		return nil, err
	}
	pub, err := messaging.NewPublisher(nc)
	if err != nil {
		return nil, err
	}
	ids := make([]string, 0, n)
	now := time.Now().UTC().Truncate(time.Millisecond)
	for i := range n {
		select {
		case err := <-errs:
			failed.n++
			failed.err = err
		default:
		}
		if failed.n > 0 {
			return nil, fmt.Errorf("an asynchronous publish failed: %w", failed.err)
		}
		id := ulid.Make().String()
		u := contract.User{
			ID: id, Name: "Filled User", Email: fmt.Sprintf("fill-%d@example.com", first+i), Age: 30,
			Version: 1, CreatedAt: now, UpdatedAt: now,
		}
		claim, _ := json.Marshal(struct {
			Owner string `json:"owner"`
		}{id})
		eventID := ulid.Make().String()
		event, err := pub.Msg(ctx, messaging.OutEvent{
			Subject: contract.EventSubjectPrefix + id,
			Type:    contract.EventCreated,
			ID:      eventID,
			Version: 1,
			Data:    contract.Event{Type: contract.EventCreated, ID: eventID, OccurredAt: u.UpdatedAt, User: u},
		})
		if err != nil {
			return nil, err
		}
		for _, m := range []*nats.Msg{
			{Subject: contract.InternalSubjectPrefix + ".index._all." + id},
			{Subject: contract.InternalSubjectPrefix + ".unique.email." + benchHash(contract.NormalizeEmail(u.Email)), Data: claim},
			event,
		} {
			if _, err := js.PublishMsgAsync(m); err != nil {
				return nil, fmt.Errorf("publish %s: %w", m.Subject, err)
			}
		}
		ids = append(ids, id)
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(5 * time.Minute):
		return nil, errors.New("fill not acknowledged within 5 minutes")
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	select {
	case err := <-errs:
		return nil, fmt.Errorf("an asynchronous publish failed: %w", err)
	default:
	}
	return ids, nil
}

// benchHash is eventstore's hash of a unique value (eventstore/store.go).
func benchHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:16])
}

// checkFilled proves that the fill wrote what the service writes: users.get
// reads the filled user id, and users.create refuses its email.
func checkFilled(ctx context.Context, client *messaging.Client, id string) error {
	u, err := contract.GetUser(ctx, client, contract.GetRequest{ID: id})
	if err != nil {
		return fmt.Errorf("get filled user %s: %w", id, err)
	}
	age := 40
	_, err = contract.CreateUser(ctx, client, contract.CreateRequest{Name: "Twin", Email: strings.ToUpper(u.Email), Age: &age})
	if !errors.Is(err, wire.ErrConflict) {
		return fmt.Errorf("create with the email of filled user %s (%s): got %v, want a conflict", id, u.Email, err)
	}
	limit := 2
	page, err := contract.ListUsers(ctx, client, contract.ListRequest{Limit: &limit})
	if err != nil || len(page.Users) == 0 {
		return fmt.Errorf("list: %d users, %v", len(page.Users), err)
	}
	return nil
}
