package config_test

import (
	"errors"
	"fmt"
	"os"

	"github.com/devloop/switchboard/config"
)

func ExampleLoad() {
	env := map[string]string{
		"HOME":                  "/home/ada",
		"NATS_URL":              "nats://nats.internal:4222",
		"SWITCHBOARD_LOG_LEVEL": "debug",
	}
	args := []string{"--request-timeout", "2s", "users", "orders"}

	cfg, rest, err := config.Load("switchboard run", args, func(k string) string { return env[k] })
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(cfg.NATS.URL, "from", cfg.Sources["nats-url"])
	fmt.Println(cfg.RequestTimeout, "from", cfg.Sources["request-timeout"])
	fmt.Println(cfg.Log.SlogLevel(), "from", cfg.Sources["log-level"])
	fmt.Println(cfg.DataDir, "from", cfg.Sources["data-dir"])
	fmt.Println(rest)
	// Output:
	// nats://nats.internal:4222 from env NATS_URL
	// 2s from flag --request-timeout
	// DEBUG from env SWITCHBOARD_LOG_LEVEL
	// /home/ada/.local/share/switchboard from default
	// [users orders]
}

func ExampleLoad_invalid() {
	_, _, err := config.Load("switchboard dev", []string{"--http-listen", "127.0.0.1:70000"}, func(string) string { return "" })
	fmt.Println(err)
	fmt.Println(errors.Is(err, config.ErrInvalid))
	// Output:
	// invalid http-listen "127.0.0.1:70000" (from flag --http-listen): port must be 0–65535
	// true
}

func ExampleConfig_Describe() {
	env := map[string]string{
		"XDG_DATA_HOME":         "/srv/data",
		"SWITCHBOARD_NATS_URL":  "nats://ada:hunter2@nats.internal:4222",
		"SWITCHBOARD_REDIS_URL": "redis://:hunter2@cache:6379/0",
	}
	cfg, _, err := config.Load("switchboard config", []string{"--log-format=json"}, func(k string) string { return env[k] })
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := cfg.Describe(os.Stdout); err != nil {
		fmt.Println(err)
	}
	// Output:
	// config                    =                                       (default)
	// nats-url                  = nats://ada:xxxxx@nats.internal:4222   (env SWITCHBOARD_NATS_URL)
	// nats-listen               = 127.0.0.1:4222                        (default)
	// nats-creds                =                                       (default)
	// nats-nkey                 =                                       (default)
	// nats-user                 =                                       (default)
	// nats-password             =                                       (default)
	// nats-token                =                                       (default)
	// nats-ca                   =                                       (default)
	// nats-cert                 =                                       (default)
	// nats-key                  =                                       (default)
	// data-dir                  = /srv/data/switchboard                 (default)
	// http-listen               = 127.0.0.1:8080                        (default)
	// log-level                 = info                                  (default)
	// log-format                = json                                  (flag --log-format)
	// tracing                   = off                                   (default)
	// pprof                     = off                                   (default)
	// request-timeout           = 5s                                    (default)
	// shutdown-timeout          = 15s                                   (default)
	// redis-url                 = redis://:xxxxx@cache:6379/0           (env SWITCHBOARD_REDIS_URL)
	// redis-timeout             = 50ms                                  (default)
	// redis-pool-size           = 0                                     (default)
	// cache-ttl                 = 5m                                    (default)
	// cache-budget              = 50ms                                  (default)
	// cache-entries             = 50000                                 (default)
	// stream-replicas           = 1                                     (default)
	// stream-placement-tags     =                                       (default)
	// postgres-url              =                                       (default)
	// postgres-pool-size        = 0                                     (default)
	// projector-batch-size      = 200                                   (default)
	// webhooks-file             =                                       (default)
	// webhook-private-addresses = auto                                  (default)
	// webhook-encryption-key    =                                       (default)
	// dev-allow-remote          = false                                 (default)
	// gateway-listen            = 127.0.0.1:8081                        (default)
	// gateway-auth              = auto                                  (default)
	// gateway-api-keys          =                                       (default)
	// gateway-jwt-secret        =                                       (default)
	// gateway-jwt-public-key    =                                       (default)
	// gateway-jwt-issuer        =                                       (default)
	// gateway-jwt-audience      =                                       (default)
	// gateway-rate-limit        = 0                                     (default)
	// gateway-rate-burst        = 0                                     (default)
	// gateway-max-body          = 1048576                               (default)
	// gateway-cors-origins      =                                       (default)
	// gateway-timeout           = 5s                                    (default)
	// gateway-max-timeout       = 30s                                   (default)
	// gateway-refresh           = 2s                                    (default)
}
