// notecheck opens a C2SP signed note with Go's own golang.org/x/mod/sumdb/note, so the tests
// check what our binaries produce with other people's code. Built offline in GOPATH mode
// against Debian's golang-golang-x-mod-dev (tests/tests/go_interop.rs):
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go build -o notecheck notecheck.go
//
// Usage: notecheck -vkey <verifier key> [-cosigner <cosignature/v1 verifier key>] [-url URL | -file PATH]
//
// Prints "ok <verified key names>" and the note's text lines on success, exit 0; on a note
// that note.Open refuses prints "refused: <error>" and exits 1; 2 for usage or I/O errors.
// x/mod's note package knows only Ed25519 note signatures (type 0x01); -cosigner adds a
// Verifier of C2SP cosignature/v1 (type 0x04) written here from the spec
// (c2sp.org/tlog-cosignature), so Go checks a witness's cosignature too.
package main

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
)

// cosigV1 verifies cosignature/v1 signatures: base64(keyID || timestamp || Ed25519 signature
// over "cosignature/v1\ntime <timestamp>\n" || note text).
type cosigV1 struct {
	name string
	hash uint32
	key  ed25519.PublicKey
}

func (c *cosigV1) Name() string    { return c.name }
func (c *cosigV1) KeyHash() uint32 { return c.hash }
func (c *cosigV1) Verify(msg, sig []byte) bool {
	if len(sig) != 8+ed25519.SignatureSize {
		return false
	}
	t := binary.BigEndian.Uint64(sig[:8])
	signed := append([]byte("cosignature/v1\ntime "+strconv.FormatUint(t, 10)+"\n"), msg...)
	return ed25519.Verify(c.key, signed, sig[8:])
}

func newCosigV1(vkey string) (note.Verifier, error) {
	parts := strings.SplitN(vkey, "+", 3)
	if len(parts) != 3 {
		return nil, errors.New("not name+hash+key")
	}
	h, err := strconv.ParseUint(parts[1], 16, 32)
	if err != nil || len(parts[1]) != 8 {
		return nil, errors.New("bad key hash")
	}
	raw, err := base64.StdEncoding.DecodeString(parts[2])
	if err != nil || len(raw) != 33 || raw[0] != 0x04 {
		return nil, errors.New("not a type 0x04 key")
	}
	sum := sha256.Sum256(append([]byte(parts[0]+"\n"), raw...))
	if binary.BigEndian.Uint32(sum[:4]) != uint32(h) {
		return nil, errors.New("key hash mismatch")
	}
	return &cosigV1{name: parts[0], hash: uint32(h), key: ed25519.PublicKey(raw[1:])}, nil
}

func main() {
	vkey := flag.String("vkey", "", "verifier key (name+hash+base64)")
	url := flag.String("url", "", "URL of the note")
	file := flag.String("file", "", "file holding the note")
	cosigner := flag.String("cosigner", "", "a cosignature/v1 verifier key")
	flag.Parse()
	verifier, err := note.NewVerifier(*vkey)
	if err != nil {
		fmt.Println("bad verifier key:", err)
		os.Exit(2)
	}
	verifiers := []note.Verifier{verifier}
	if *cosigner != "" {
		c, err := newCosigV1(*cosigner)
		if err != nil {
			fmt.Println("bad cosigner key:", err)
			os.Exit(2)
		}
		verifiers = append(verifiers, c)
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
	n, err := note.Open(msg, note.VerifierList(verifiers...))
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
