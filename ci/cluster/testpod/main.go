// Command testpod is the one program of the test cluster's own images (ci/cluster/images.sh):
// the pod sandbox's pause process and the echo server the end-to-end tests talk to. Static
// (CGO_ENABLED=0), so each image is this binary alone on an empty root.
//
//	testpod pause                 sleep until SIGTERM or SIGINT (the pause image)
//	testpod serve [-http :80] [-echo :7]
//	                              HTTP: every path answers "<hostname>\n"; echo: lines back
//	testpod get [-timeout 2s] URL
//	                              GET once; prints the body, exit 1 on any error
//	testpod hold [-every 200ms] [-for 30s] ADDR
//	                              one TCP connection to an echo server, a line every tick;
//	                              prints "ok N" at the end, exit 1 on the first failed round
//	testpod watch [-every 20ms] [-timeout 100ms] ADDR
//	                              a TCP connect to ADDR every tick, forever; prints
//	                              "<unix ms> ok|fail" at the start and at every change
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

func pause() {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
}

func serve(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	httpAddr := fs.String("http", ":80", "HTTP address")
	echoAddr := fs.String("echo", ":7", "line echo address")
	fs.Parse(args)
	host, _ := os.Hostname()
	ln, err := net.Listen("tcp", *echoAddr)
	if err != nil {
		return err
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); io.Copy(c, c) }()
		}
	}()
	h := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, host) })
	return http.ListenAndServe(*httpAddr, h)
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
	every := fs.Duration("every", 200*time.Millisecond, "time between rounds")
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
		line := fmt.Sprintf("round %d\n", n)
		if _, err := io.WriteString(c, line); err != nil {
			return fmt.Errorf("round %d: %w", n, err)
		}
		got, err := r.ReadString('\n')
		if err != nil || got != line {
			return fmt.Errorf("round %d: got %q, %v", n, got, err)
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
		state := "ok"
		c, err := net.DialTimeout("tcp", addr, *timeout)
		if err != nil {
			state = "fail"
		} else {
			c.Close()
		}
		if state != last {
			fmt.Printf("%d %s\n", time.Now().UnixMilli(), state)
			last = state
		}
		time.Sleep(*every)
	}
}
