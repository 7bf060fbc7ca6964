package notifications_test

import (
	"fmt"

	"github.com/devloop/switchboard/services/notifications"
)

// A delivery's webhook-signature is the Standard Webhooks one: the HMAC of
// "<webhook-id>.<webhook-timestamp>.<body>" under the secret's key, in
// base64 after "v1,". A receiver recomputes it from the headers and the
// raw body and compares in constant time (hmac.Equal); during a rotation
// the header holds one signature per secret.
func ExampleSign() {
	sig, err := notifications.Sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, []byte(`{"test": 2432232314}`),
		"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	fmt.Println(sig, err)
	// Output: v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE= <nil>
}
