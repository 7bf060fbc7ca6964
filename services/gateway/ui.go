package gateway

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"
	"sync"
)

// ui holds the API page: our index.html and init.js, and Swagger UI, its
// large files stored gzipped (ui/swagger-ui/README.md says which version,
// from where, and its license).
//
//go:embed ui/index.html ui/init.js ui/swagger-ui/swagger-ui-bundle.js.gz ui/swagger-ui/swagger-ui.css.gz ui/swagger-ui/favicon-32x32.png
var ui embed.FS

// asset is one file of the page. A file stored gzipped has only gz.
type asset struct {
	data, gz    []byte
	contentType string
	etag        string
}

// assets indexes the page's files once, on first use.
type assets struct {
	once  sync.Once
	files map[string]*asset // by path under /docs/
}

func (a *assets) load() {
	a.files = map[string]*asset{}
	_ = fs.WalkDir(ui, "ui", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := ui.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(data)
		f := &asset{etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
		name := strings.TrimPrefix(p, "ui/")
		if n, ok := strings.CutSuffix(name, ".gz"); ok {
			name, f.gz = n, data
		} else {
			f.data = data
		}
		f.contentType = mime.TypeByExtension(path.Ext(name))
		if f.contentType == "" {
			f.contentType = "application/octet-stream"
		}
		a.files[name] = f
		return nil
	})
}

// docsCSP lets the page load only from the gateway itself. Swagger UI
// sets inline styles, and shows images given as data: URLs.
const docsCSP = "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'none'"

// serveDocs serves /docs/<name>; /docs itself redirects to /docs/.
func (a *assets) serveDocs(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/docs" {
		http.Redirect(w, r, "docs/", http.StatusMovedPermanently)
		return
	}
	a.once.Do(a.load)
	name := strings.TrimPrefix(r.URL.Path, "/docs/")
	if name == "" {
		name = "index.html"
	}
	f, ok := a.files[name]
	if !ok {
		writeProblem(w, Problem{Status: http.StatusNotFound, Detail: "no such file of the API page"})
		return
	}
	h := w.Header()
	h.Set("Content-Type", f.contentType)
	h.Set("ETag", f.etag)
	h.Set("Vary", "Accept-Encoding")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-cache") // revalidate: a new binary may bring new files
	if name == "index.html" {
		h.Set("Content-Security-Policy", docsCSP)
	}
	if r.Header.Get("If-None-Match") == f.etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	if f.data == nil && !acceptsGzip(r) {
		// Rare (browsers all take gzip): unzip as we go.
		zr, err := gzip.NewReader(bytes.NewReader(f.gz))
		if err != nil {
			writeProblem(w, Problem{Status: http.StatusInternalServerError, Detail: "corrupt embedded file " + name})
			return
		}
		w.WriteHeader(http.StatusOK)
		if r.Method != http.MethodHead {
			_, _ = io.Copy(w, zr)
		}
		return
	}
	body := f.data
	if f.data == nil {
		body = f.gz
		h.Set("Content-Encoding", "gzip")
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		enc, q, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(enc), "gzip") && strings.ReplaceAll(strings.TrimSpace(q), " ", "") != "q=0" {
			return true
		}
	}
	return false
}
