package lifecycle_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/devloop/switchboard/lifecycle"
)

func TestStackStopsInReverseAndOnce(t *testing.T) {
	var s lifecycle.Stack
	var order []string
	s.PushFunc("nats", func() { order = append(order, "nats") })
	s.Push("service", func(context.Context) error { order = append(order, "service"); return errors.New("stuck") })
	s.PushFunc("http", func() { order = append(order, "http") })
	err := s.Stop(context.Background())
	if got := strings.Join(order, ","); got != "http,service,nats" {
		t.Errorf("stop order %s", got)
	}
	if err == nil || err.Error() != "service: stuck" {
		t.Errorf("err = %v, want the service's, named", err)
	}
	if again := s.Stop(context.Background()); again != err {
		t.Errorf("second Stop = %v, want the first's %v", again, err)
	}
	if len(order) != 3 {
		t.Errorf("a second Stop ran the stops again: %v", order)
	}
}

// A Start that fails half-way stops what it started.
func ExampleStack() {
	var s lifecycle.Stack
	start := func() (err error) {
		defer func() {
			if err != nil {
				_ = s.Stop(context.Background())
			}
		}()
		fmt.Println("start stream")
		s.PushFunc("stream", func() { fmt.Println("stop stream") })
		fmt.Println("start consumer")
		s.PushFunc("consumer", func() { fmt.Println("stop consumer") })
		return errors.New("endpoint: subject taken")
	}
	fmt.Println(start())
	// Output:
	// start stream
	// start consumer
	// stop consumer
	// stop stream
	// endpoint: subject taken
}
