package benchload

import (
	"encoding/json"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
)

// ServeJSONEcho serves subject on nc with a plain micro endpoint that does
// by hand what a typed endpoint does: decode the request into a T with
// encoding/json (a 400 when it does not decode) and encode it back. It is
// the honest baseline of the typed layer's benchmarks. Stop the returned
// service when done.
func ServeJSONEcho[T any](nc *nats.Conn, name, subject string) (micro.Service, error) {
	return micro.AddService(nc, micro.Config{
		Name:    name,
		Version: "1.0.0",
		Endpoint: &micro.EndpointConfig{
			Subject: subject,
			Handler: micro.HandlerFunc(func(r micro.Request) {
				var req T
				if err := json.Unmarshal(r.Data(), &req); err != nil {
					_ = r.Error("400", err.Error(), nil)
					return
				}
				data, _ := json.Marshal(req)
				_ = r.Respond(data)
			}),
		},
	})
}
