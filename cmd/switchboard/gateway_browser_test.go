package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/devloop/switchboard/internal/testkit"
	"github.com/devloop/switchboard/services/users/contract"
)

const chromiumInstallHint = "apt-get install chromium"

// TestBrowserAPIPage opens the gateway's /docs in headless Chromium, as a
// developer would: the page loads without console errors, lists the users
// and orders endpoints, and creates a user with "Try it out". The
// screenshot is kept (see artifactDir).
func TestBrowserAPIPage(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("browser test")
	}
	chromium := findChromium(t)
	sb := startRun(t, devArgs(t.TempDir())...)
	sb.waitReady(t)
	base := sb.gatewayURL(t)

	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	ctx = newBrowser(t, ctx, chromium)

	// Every console error, uncaught exception and browser log error (a
	// failed load, a CSP violation) of the page.
	var (
		mu       sync.Mutex
		problems []string
	)
	if err := chromedp.Listen(ctx, func(ev any) {
		var p string
		switch ev := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeAssert {
				var args []string
				for _, a := range ev.Args {
					args = append(args, string(a.Value)+a.Description)
				}
				p = "console." + string(ev.Type) + ": " + strings.Join(args, " ")
			}
		case *runtime.EventExceptionThrown:
			p = "exception: " + (&chromedp.ExceptionError{ExceptionDetails: ev.ExceptionDetails}).Error()
		case *log.EventEntryAdded:
			if ev.Entry.Level == log.EntryLevelError {
				p = "log error: " + ev.Entry.Text + " " + ev.Entry.URL
			}
		}
		if p != "" {
			mu.Lock()
			problems = append(problems, p)
			mu.Unlock()
		}
	}); err != nil {
		t.Fatal(err)
	}

	if err := chromedp.Do(ctx, chromedp.Navigate(base+"/docs")); err != nil {
		t.Fatalf("open %s/docs: %v", base, err)
	}
	// The operations appear once Swagger UI has fetched /openapi.json.
	var paths []string
	testkit.Eventually(t, 30*time.Second, 100*time.Millisecond, func() error {
		var err error
		paths, err = chromedp.Run(ctx, chromedp.Evaluate[[]string](
			`[...document.querySelectorAll(".opblock-summary")].map(s => s.querySelector(".opblock-summary-method").textContent + " " + s.querySelector(".opblock-summary-path").textContent.replaceAll("\u200b", ""))`))
		if err != nil {
			return err
		}
		if !slices.Contains(paths, "POST /v1/users") {
			return fmt.Errorf("POST /v1/users not listed yet; listed: %q", paths)
		}
		return nil
	})
	for _, want := range []string{"POST /v1/users", "GET /v1/users/{id}", "PATCH /v1/users/{id}", "DELETE /v1/users/{id}", "GET /v1/users",
		"POST /v1/orders", "GET /v1/orders/{id}", "GET /v1/orders", "POST /v1/orders/{id}/cancel"} {
		if !slices.Contains(paths, want) {
			t.Errorf("the page does not list %s; it lists %q", want, paths)
		}
	}

	// Try it out: POST /v1/users with a body typed into the page.
	const body = `{"name":"Browser Ada","email":"browser-ada@example.com","age":36}`
	// The operation's block, found by what it shows.
	op := `[...document.querySelectorAll(".opblock")].find(b => b.querySelector(".opblock-summary-method")?.textContent === "POST" && b.querySelector(".opblock-summary-path")?.textContent.replaceAll("\u200b", "") === "/v1/users")`
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](op+`.querySelector(".opblock-summary-control").click(), true`)); err != nil {
		t.Fatalf("expand POST /v1/users: %v", err)
	}
	clickWhenThere(t, ctx, op+`.querySelector(".try-out__btn")`)
	testkit.Eventually(t, 10*time.Second, 50*time.Millisecond, func() error {
		// The textarea is React's: set its value the way typing does.
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](fmt.Sprintf(`(() => {
			const ta = %s.querySelector("textarea.body-param__text");
			if (!ta) return false;
			Object.getOwnPropertyDescriptor(HTMLTextAreaElement.prototype, "value").set.call(ta, %q);
			ta.dispatchEvent(new Event("input", {bubbles: true}));
			return true;
		})()`, op, body)))
		if err != nil || !ok {
			return fmt.Errorf("no request body editor yet (%v)", err)
		}
		return nil
	})
	clickWhenThere(t, ctx, op+`.querySelector("button.execute")`)

	var created contract.User
	testkit.Eventually(t, 20*time.Second, 100*time.Millisecond, func() error {
		// The live response: its status, then its body (the first pre).
		res, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`(() => {
			const row = `+op+`.querySelector(".live-responses-table tbody tr.response");
			if (!row) return [];
			return [row.querySelector(".response-col_status").textContent, row.querySelector(".response-col_description pre").textContent];
		})()`))
		if err != nil {
			return err
		}
		if len(res) < 2 {
			return fmt.Errorf("no response shown yet")
		}
		if strings.TrimSpace(res[0]) != "200" {
			return fmt.Errorf("the page shows status %q: %q", res[0], res)
		}
		return json.Unmarshal([]byte(res[1]), &created)
	})
	if created.ID == "" || created.Email != "browser-ada@example.com" || created.Version != 1 {
		t.Errorf("the page shows %+v, want the created user", created)
	}
	if got := getUser(t, client(t, sb.natsURL), created.ID); got.Email != "browser-ada@example.com" {
		t.Errorf("users.get %s = %+v: the page's request did not create it", created.ID, got)
	}

	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // quality 100: a PNG
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	path := filepath.Join(artifactDir(t), "gateway-docs.png")
	if err := os.WriteFile(path, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot of /docs: %s", path)

	mu.Lock()
	defer mu.Unlock()
	for _, p := range problems {
		t.Errorf("the page logged an error: %s", p)
	}
}

// clickWhenThere clicks the element expr finds once it is there.
func clickWhenThere(t *testing.T, ctx context.Context, expr string) {
	t.Helper()
	testkit.Eventually(t, 10*time.Second, 50*time.Millisecond, func() error {
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](fmt.Sprintf(`(() => { const e = %s; if (!e) return false; e.click(); return true; })()`, expr)))
		if err != nil || !ok {
			return fmt.Errorf("%s: not there yet (%v)", expr, err)
		}
		return nil
	})
}

// findChromium returns the path of Debian's chromium (or another
// Chromium or Chrome on PATH); it skips the test when there is none, and
// fails it in CI.
func findChromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if path, err := exec.LookPath(name); err == nil {
			return path
		}
	}
	requireTool(t, "chromium", chromiumInstallHint)
	return ""
}

// newBrowser starts headless Chromium with a profile of its own, stopped
// when the test ends.
func newBrowser(t *testing.T, ctx context.Context, path string) context.Context {
	t.Helper()
	profile, err := os.MkdirTemp("", "switchboard-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.UserDataDir(profile),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.WindowSize(1280, 1600),
	)
	// chromedp may log from its goroutines while the browser stops: after
	// the test, t.Logf would panic, so those lines are dropped.
	var (
		logMu sync.Mutex
		ended bool
	)
	logf := func(format string, args ...any) {
		logMu.Lock()
		defer logMu.Unlock()
		if !ended {
			t.Logf(format, args...)
		}
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	bctx, cancelBrowser := chromedp.NewContext(actx, chromedp.WithLogf(logf))
	t.Cleanup(func() {
		cancelBrowser()
		cancelAlloc()
		logMu.Lock()
		ended = true
		logMu.Unlock()
		// Chromium's helpers may still write to the profile for a moment.
		_ = testkit.Poll(5*time.Second, 100*time.Millisecond, func() error { return os.RemoveAll(profile) })
	})
	return bctx
}

// artifactDir is where tests keep what a person may want to look at
// afterwards: $SWITCHBOARD_TEST_ARTIFACTS, else switchboard-test-artifacts
// in the temporary directory. It survives the test.
func artifactDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("SWITCHBOARD_TEST_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "switchboard-test-artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}
