package notifications_test

import (
	"fmt"

	"github.com/devloop/switchboard/services/notifications"
)

// A receiver recomputes Switchboard-Signature from the Switchboard-Timestamp
// header and the raw body, and compares in constant time (hmac.Equal).
func ExampleSign() {
	fmt.Println(notifications.Sign("secret", "1700000000", []byte("{}")))
	// Output: v1=b8569b78799ff9e3cbff0fc2d63a33a2b57f3282abd07c37ae5e8e7d79a5f163
}
