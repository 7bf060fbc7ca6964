// Package gateway is Switchboard's HTTP gateway: an HTTP server that is a
// NATS client. It needs no route table of its own. It discovers the micro
// services on its NATS connection through `$SRV.INFO`, keeps the table of
// their endpoints current as services and versions come and go, and
// forwards each HTTP request as a NATS request to the endpoint's subject.
//
// An endpoint declares its route with messaging.WithHTTP (for example
// "GET /v1/users/{id}"); one without a route is served as
// POST /v1/<service>/<endpoint>. Path parameters, query parameters and a
// JSON body make up the request, converted to the types of the endpoint's
// request schema; the service validates the result as it validates any
// request. Replies are JSON, errors RFC 9457 problem details. The OpenAPI
// 3.1 document at /openapi.json is generated from the schemas the endpoints
// publish, and /docs serves Swagger UI over it.
//
// At the edge it authenticates callers (API keys or bearer JWTs), limits
// each caller's request rate, bounds body sizes and every phase of an HTTP
// exchange, answers CORS, and shuts down gracefully. It keeps no state
// beyond its discovery cache, so any number of gateways can run behind a
// load balancer.
//
// docs/gateway.md describes routes, errors, limits and discovery for users
// of the API.
package gateway
