// Command testpod is the one program of the test cluster's own images (ci/cluster/images.sh):
// the pod sandbox's pause process and the echo server the end-to-end tests talk to. Static
// (CGO_ENABLED=0), so each image is this binary alone on an empty root.
//
//	testpod pause                 sleep until SIGTERM or SIGINT, reaping orphans (the pause image)
//	testpod serve [-http :80]     HTTP: every path answers "<hostname>\n"
//	testpod get [-timeout 2s] URL
//	                              GET once; prints the body, exit 1 on any error
//	testpod hold [-every 200ms] [-for 30s] ADDR
//	                              one TCP connection to an HTTP server, a request every tick
//	                              (keep-alive); prints "ok N" at the end, exit 1 on the first
//	                              failed request
//	testpod watch [-every 20ms] [-timeout 100ms] ADDR
//	                              a TCP connect to ADDR every tick, forever; prints
//	                              "<unix ms> ok|fail" at the first attempt and at every change,
//	                              the time being when that attempt's SYN left
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: testpod pause|serve|get|hold ...")
		os.Exit(2)
	}
	args := os.Args[2:]
	var err error
	switch os.Args[1] {
	case "pause":
		pause()
	case "serve":
		err = serve(args)
	case "get":
		err = get(args)
	case "hold":
		err = hold(args)
	case "watch":
		err = watch(args)
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "testpod:", err)
		os.Exit(1)
	}
}

// only parses a command's flags and returns its one argument (a `what`).
func only(fs *flag.FlagSet, args []string, what string) (string, error) {
	fs.Parse(args)
	if fs.NArg() != 1 {
		return "", fmt.Errorf("%s needs one %s", fs.Name(), what)
	}
	return fs.Arg(0), nil
}

// pause waits for SIGTERM or SIGINT and, as the PID 1 of a pod that shares its process
// namespace, reaps the orphans that are handed to it.
func pause() {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	for s := range sig {
		if s != syscall.SIGCHLD {
			return
		}
		for {
			pid, err := syscall.Wait4(-1, nil, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}

func serve(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	addr := fs.String("http", ":80", "HTTP address")
	fs.Parse(args)
	host, _ := os.Hostname()
	h := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, host) })
	return http.ListenAndServe(*addr, h)
}

func get(args []string) error {
	fs := flag.NewFlagSet("get", flag.ExitOnError)
	timeout := fs.Duration("timeout", 2*time.Second, "whole request timeout")
	url, err := only(fs, args, "URL")
	if err != nil {
		return err
	}
	client := http.Client{Timeout: *timeout}
	resp, err := client.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	fmt.Print(string(body))
	return nil
}

func hold(args []string) error {
	fs := flag.NewFlagSet("hold", flag.ExitOnError)
	every := fs.Duration("every", 200*time.Millisecond, "time between requests")
	total := fs.Duration("for", 30*time.Second, "how long to hold the connection")
	addr, err := only(fs, args, "address")
	if err != nil {
		return err
	}
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	r := bufio.NewReader(c)
	end := time.Now().Add(*total)
	n := 0
	for ; time.Now().Before(end); n++ {
		c.SetDeadline(time.Now().Add(2 * time.Second))
		if _, err := fmt.Fprintf(c, "GET /%d HTTP/1.1\r\nHost: %s\r\n\r\n", n, addr); err != nil {
			return fmt.Errorf("request %d: %w", n, err)
		}
		resp, err := http.ReadResponse(r, nil)
		if err != nil {
			return fmt.Errorf("request %d: %w", n, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("request %d: %s", n, resp.Status)
		}
		time.Sleep(*every)
	}
	fmt.Printf("ok %d\n", n)
	return nil
}

func watch(args []string) error {
	fs := flag.NewFlagSet("watch", flag.ExitOnError)
	every := fs.Duration("every", 20*time.Millisecond, "time between attempts")
	timeout := fs.Duration("timeout", 100*time.Millisecond, "connect timeout")
	addr, err := only(fs, args, "address")
	if err != nil {
		return err
	}
	last := ""
	for {
		state, start := "ok", time.Now()
		c, err := net.DialTimeout("tcp", addr, *timeout)
		if err != nil {
			state = "fail"
		} else {
			c.Close()
		}
		if state != last {
			fmt.Printf("%d %s\n", start.UnixMilli(), state)
			last = state
		}
		time.Sleep(*every)
	}
}
