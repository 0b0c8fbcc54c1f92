// notecheck opens a C2SP signed note with Go's own golang.org/x/mod/sumdb/note, so the tests
// check what our binaries produce with other people's code. Built offline in GOPATH mode
// against Debian's golang-golang-x-mod-dev (tests/tests/go_interop.rs):
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go build -o notecheck notecheck.go
//
// Usage: notecheck -vkey <verifier key> [-url URL | -file PATH]
//
// Prints "ok <verified key names>" and the note's text lines on success, exit 0; on a note
// that note.Open refuses prints "refused: <error>" and exits 1; 2 for usage or I/O errors.
package main

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"golang.org/x/mod/sumdb/note"
)

func main() {
	vkey := flag.String("vkey", "", "verifier key (name+hash+base64)")
	url := flag.String("url", "", "URL of the note")
	file := flag.String("file", "", "file holding the note")
	flag.Parse()
	verifier, err := note.NewVerifier(*vkey)
	if err != nil {
		fmt.Println("bad verifier key:", err)
		os.Exit(2)
	}
	var msg []byte
	switch {
	case *url != "":
		resp, err := http.Get(*url)
		if err != nil {
			fmt.Println("get:", err)
			os.Exit(2)
		}
		defer resp.Body.Close()
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
			fmt.Println("content type is", ct)
			os.Exit(2)
		}
		msg, err = io.ReadAll(io.LimitReader(resp.Body, 1<<16))
		if err != nil {
			fmt.Println("read:", err)
			os.Exit(2)
		}
	case *file != "":
		msg, err = os.ReadFile(*file)
		if err != nil {
			fmt.Println("read:", err)
			os.Exit(2)
		}
	default:
		fmt.Println("need -url or -file")
		os.Exit(2)
	}
	n, err := note.Open(msg, note.VerifierList(verifier))
	if err != nil {
		fmt.Println("refused:", err)
		os.Exit(1)
	}
	names := []string{}
	for _, s := range n.Sigs {
		names = append(names, fmt.Sprintf("%s+%08x", s.Name, s.Hash))
	}
	fmt.Println("ok", strings.Join(names, " "))
	fmt.Print(n.Text)
}
