package testkit

import (
	"bytes"
	"net"
	"sync"
	"testing"
)

// Proxy forwards TCP connections to a server, and can hold back what the
// server sends, as a network that loses a reply would: a way to make the
// outcome of a request unknown to its sender. It counts the NATS publishes
// (HPUB and PUB) that clients send through it.
type Proxy struct {
	ln     net.Listener
	target string

	mu      sync.Mutex
	blocked bool
	resume  chan struct{}
	pubs    int
	conns   []net.Conn
}

// StartProxy listens on a free loopback port and forwards to target
// (host:port), until the test ends.
func StartProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("proxy: %v", err)
	}
	p := &Proxy{ln: ln, target: target, resume: make(chan struct{})}
	go p.accept()
	t.Cleanup(p.Close)
	return p
}

// URL is the nats:// URL of the proxy.
func (p *Proxy) URL() string { return "nats://" + p.ln.Addr().String() }

// HoldReplies stops forwarding what servers send until ReleaseReplies.
func (p *Proxy) HoldReplies() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.blocked {
		p.blocked = true
		p.resume = make(chan struct{})
	}
}

// ReleaseReplies forwards what was held, and all that follows.
func (p *Proxy) ReleaseReplies() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.blocked {
		p.blocked = false
		close(p.resume)
	}
}

// Publishes is how many publishes clients sent through the proxy.
func (p *Proxy) Publishes() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pubs
}

// Close stops the proxy and its connections.
func (p *Proxy) Close() {
	_ = p.ln.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		_ = c.Close()
	}
	if p.blocked {
		p.blocked = false
		close(p.resume)
	}
}

func (p *Proxy) accept() {
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		server, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = client.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, client, server)
		p.mu.Unlock()
		go p.upstream(client, server)
		go p.downstream(server, client)
	}
}

// upstream copies client to server, counting publishes at line starts.
func (p *Proxy) upstream(client, server net.Conn) {
	buf := make([]byte, 64<<10)
	tail := []byte("\n") // the end of what came before, for matches across reads
	for {
		n, err := client.Read(buf)
		if n > 0 {
			seen := append(tail, buf[:n]...)
			k := bytes.Count(seen, []byte("\nHPUB ")) + bytes.Count(seen, []byte("\nPUB "))
			tail = append([]byte(nil), seen[max(0, len(seen)-5):]...)
			p.mu.Lock()
			p.pubs += k
			p.mu.Unlock()
			if _, werr := server.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			_ = server.Close()
			return
		}
	}
}

// downstream copies server to client, waiting while replies are held.
func (p *Proxy) downstream(server, client net.Conn) {
	buf := make([]byte, 64<<10)
	for {
		p.mu.Lock()
		blocked, resume := p.blocked, p.resume
		p.mu.Unlock()
		if blocked {
			<-resume
		}
		n, err := server.Read(buf)
		if n > 0 {
			p.mu.Lock()
			blocked, resume = p.blocked, p.resume
			p.mu.Unlock()
			if blocked {
				<-resume // held: it goes on once released
			}
			if _, werr := client.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			_ = client.Close()
			return
		}
	}
}
