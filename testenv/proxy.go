package testenv

import (
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// Proxy is a TCP forwarder between a client and a server for network fault
// tests. Cut closes every connection and refuses new ones (the client sees
// errors at once); Blackhole stops moving bytes but keeps every socket open
// (only the client's own timeouts can notice); Restore heals either.
type Proxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	state proxyState
	conns map[net.Conn]struct{}
	heal  chan struct{} // closed by Restore: wakes blocked copiers
	wg    sync.WaitGroup
}

type proxyState int

const (
	proxyUp proxyState = iota
	proxyCut
	proxyBlackhole
)

// StartProxy listens on a free local port and forwards to target (host:port).
func StartProxy(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("testenv: proxy: %w", err)
	}
	p := &Proxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}, heal: make(chan struct{})}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Port is where clients connect.
func (p *Proxy) Port() int { return p.ln.Addr().(*net.TCPAddr).Port }

// Cut drops every connection (RST) and refuses new ones until Restore.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.state = proxyCut
	for c := range p.conns {
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // reset, not an orderly close
		}
		c.Close()
	}
}

// Blackhole stops forwarding in both directions; connections stay open and
// new ones are accepted but never reach the server.
func (p *Proxy) Blackhole() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.state = proxyBlackhole
}

// Restore lets traffic through again. Connections that lived through a
// black hole resume where they stopped, as TCP would after a healed route.
func (p *Proxy) Restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.state = proxyUp
	close(p.heal)
	p.heal = make(chan struct{})
}

// Close stops the proxy and every connection, and waits for its goroutines.
func (p *Proxy) Close() error {
	err := p.ln.Close()
	p.mu.Lock()
	for c := range p.conns {
		c.Close()
	}
	if p.state == proxyBlackhole {
		p.state = proxyCut
		close(p.heal)
		p.heal = make(chan struct{})
	}
	p.mu.Unlock()
	p.wg.Wait()
	return err
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		refuse := p.state == proxyCut
		p.mu.Unlock()
		if refuse {
			if tc, ok := c.(*net.TCPConn); ok {
				_ = tc.SetLinger(0)
			}
			c.Close()
			continue
		}
		s, err := net.DialTimeout("tcp", p.target, 5*time.Second)
		if err != nil {
			c.Close()
			continue
		}
		if !p.track(c, s) {
			continue
		}
		p.wg.Add(2)
		go p.pipe(c, s)
		go p.pipe(s, c)
	}
}

// track registers a pair, or closes it if the proxy was cut meanwhile.
func (p *Proxy) track(conns ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.state == proxyCut {
		for _, c := range conns {
			c.Close()
		}
		return false
	}
	for _, c := range conns {
		p.conns[c] = struct{}{}
	}
	return true
}

func (p *Proxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	c.Close()
}

// pipe copies src to dst, holding each chunk while the proxy is a black hole.
func (p *Proxy) pipe(src, dst net.Conn) {
	defer p.wg.Done()
	defer p.untrack(src)
	defer p.untrack(dst)
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			for {
				p.mu.Lock()
				state, heal := p.state, p.heal
				p.mu.Unlock()
				if state == proxyUp {
					break
				}
				if state == proxyCut {
					return
				}
				<-heal
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if err != io.EOF {
				return
			}
			if tc, ok := dst.(*net.TCPConn); ok {
				_ = tc.CloseWrite()
			}
			return
		}
	}
}
