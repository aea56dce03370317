// Command crds writes the CustomResourceDefinitions that Cilium embeds in its Go package
// github.com/cilium/cilium/pkg/k8s/apis/cilium.io/client (the ones the agent installs) for
// the kinds ward needs, one YAML file per CRD named after its plural, into a directory.
//
// The Cilium version is the one this module requires (go.mod): that is the only place it is
// pinned. Usage: go run . -out DIR (ci/crds/fetch.sh runs it and caches the result).
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"

	"sigs.k8s.io/yaml"

	"github.com/cilium/cilium/pkg/k8s/apis/cilium.io/client"
)

// The CRDs ward uses, by the names Cilium's package knows them by.
var wanted = []string{
	client.CNPCRDName,  // CiliumNetworkPolicy
	client.CCNPCRDName, // CiliumClusterwideNetworkPolicy
	client.CECCRDName,  // CiliumEnvoyConfig
	client.CCECCRDName, // CiliumClusterwideEnvoyConfig
	client.CCGCRDName,  // CiliumCIDRGroup
}

func main() {
	out := flag.String("out", "", "directory to write the CRDs into (created if missing)")
	flag.Parse()
	if *out == "" || flag.NArg() != 0 {
		fmt.Fprintln(os.Stderr, "usage: crds -out DIR")
		os.Exit(2)
	}
	if err := run(*out); err != nil {
		fmt.Fprintln(os.Stderr, "crds:", err)
		os.Exit(1)
	}
}

func run(out string) error {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, name := range wanted {
		crd := client.GetPregeneratedCRD(logger, name)
		// The object as Cilium's file states it: the typed value adds an empty status and a
		// null creationTimestamp, which controller-gen's files do not have.
		raw, err := json.Marshal(crd)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		var obj map[string]any
		if err := json.Unmarshal(raw, &obj); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		delete(obj, "status")
		if meta, ok := obj["metadata"].(map[string]any); ok {
			delete(meta, "creationTimestamp")
		}
		body, err := yaml.Marshal(obj)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		// controller-gen starts its files with a document marker; with it the output is
		// byte-for-byte Cilium's file (ci/crds/fetch.sh checks that).
		body = append([]byte("---\n"), body...)
		file := filepath.Join(out, crd.Spec.Names.Plural+".yaml")
		if err := os.WriteFile(file, body, 0o644); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "crds: %s (%s) -> %s\n", crd.Spec.Names.Kind, ciliumVersion(), file)
	}
	return nil
}

// ciliumVersion is the version of Cilium's module this binary was built with.
func ciliumVersion() string {
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, m := range info.Deps {
			if m.Path == "github.com/cilium/cilium" {
				return m.Version
			}
		}
	}
	return "unknown"
}
