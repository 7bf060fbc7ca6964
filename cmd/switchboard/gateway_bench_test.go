package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/devloop/switchboard/embedded/embeddedtest"
	"github.com/devloop/switchboard/eventstore"
	"github.com/devloop/switchboard/internal/benchload"
	"github.com/devloop/switchboard/messaging"
	"github.com/devloop/switchboard/services/gateway"
	"github.com/devloop/switchboard/services/users"
	"github.com/devloop/switchboard/services/users/contract"
)

// BenchmarkGatewayUsersGet reads one user three ways, in one process on
// one embedded server, at c=1, 16 and 128:
//
//   - nats: users.get over NATS with messaging.Client (the baseline);
//   - gateway: GET /v1/users/{id} through the gateway over loopback HTTP;
//   - http: GET /v1/users/{id} on a plain net/http handler that does the
//     same lookup (validate, read the event store, encode) with no NATS
//     request in between, as a REST service would.
//
// gateway and http also report tput-vs-nats, their ops/s over nats's at
// the same c in the same run. See docs/performance.md.
func BenchmarkGatewayUsersGet(b *testing.B) {
	ctx := context.Background()
	srv := embeddedtest.Start(b, b.TempDir())
	svc, err := users.Start(ctx, embeddedtest.Connect(b, srv, "bench-users"), users.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = svc.Stop(context.Background()) })
	gw, err := gateway.Start(ctx, embeddedtest.Connect(b, srv, "bench-gateway"), "127.0.0.1:0", gateway.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = gw.Stop(context.Background()) })

	// The plain handler reads the same event store, on a connection of
	// its own.
	store, err := eventstore.Open(ctx, embeddedtest.Connect(b, srv, "bench-http"), users.Entity())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(store.Close)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/users/{id}", func(w http.ResponseWriter, r *http.Request) {
		req := contract.GetRequest{ID: r.PathValue("id")}
		if err := req.Validate(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		rec, err := store.Get(r.Context(), req.ID)
		if err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		data, _ := json.Marshal(rec.State)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(data)
	})
	plain := httptest.NewServer(mux)
	b.Cleanup(plain.Close)

	client, err := messaging.NewClient(embeddedtest.Connect(b, srv, "bench-client"), messaging.WithTimeout(5*time.Second))
	if err != nil {
		b.Fatal(err)
	}
	age := 36
	ada, err := contract.CreateUser(ctx, client, contract.CreateRequest{Name: "Ada Lovelace", Email: "ada@example.com", Age: &age})
	if err != nil {
		b.Fatal(err)
	}
	hc := &http.Client{Transport: &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 256}}
	b.Cleanup(hc.CloseIdleConnections)
	httpGet := func(url string) func(context.Context) error {
		return func(ctx context.Context) error {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			if err != nil {
				return err
			}
			resp, err := hc.Do(req)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				return err
			}
			var u contract.User
			if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &u) != nil || u.ID != ada.ID {
				return fmt.Errorf("GET %s: %d %s", url, resp.StatusCode, body)
			}
			return nil
		}
	}
	variants := []struct {
		name string
		call func(context.Context) error
	}{
		{"nats", func(ctx context.Context) error {
			u, err := contract.GetUser(ctx, client, contract.GetRequest{ID: ada.ID})
			if err == nil && u.ID != ada.ID {
				err = fmt.Errorf("got user %q", u.ID)
			}
			return err
		}},
		{"gateway", httpGet(gw.URL() + "/v1/users/" + ada.ID)},
		{"http", httpGet(plain.URL + "/v1/users/" + ada.ID)},
	}
	for _, c := range []int{1, 16, 128} {
		var natsRate float64 // ops/s of nats at this c, in this run
		for _, v := range variants {
			b.Run(fmt.Sprintf("c=%d/%s", c, v.name), func(b *testing.B) {
				benchload.Run(b, c, v.call, benchload.SelfCPU)
				rate := float64(b.N) / b.Elapsed().Seconds()
				if v.name == "nats" {
					natsRate = rate
				} else if natsRate > 0 {
					b.ReportMetric(rate/natsRate, "tput-vs-nats")
				}
			})
		}
	}
}
