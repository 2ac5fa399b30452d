package debian

import (
	"bytes"
	"errors"
	"fmt"
	"os"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/clearsign"
)

// DebianKeyring is where Debian hosts keep the archive's signing keys
// (package debian-archive-keyring).
const DebianKeyring = "/usr/share/keyrings/debian-archive-keyring.gpg"

// ErrBadSignature is the cause of an InRelease file refused because no
// signature on it verifies against the keyring.
var ErrBadSignature = errors.New("not signed by a key of the keyring")

// ReadKeyring reads OpenPGP public keys from a keyring file, binary (as
// Debian ships them) or ASCII-armored.
func ReadKeyring(path string) (openpgp.EntityList, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	var keys openpgp.EntityList
	if bytes.HasPrefix(bytes.TrimSpace(data), []byte("-----BEGIN PGP")) {
		keys, err = openpgp.ReadArmoredKeyRing(bytes.NewReader(data))
	} else {
		keys, err = openpgp.ReadKeyRing(bytes.NewReader(data))
	}
	if err != nil {
		return nil, fmt.Errorf("keyring %s: %w", path, err)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("keyring %s: no keys", path)
	}
	return keys, nil
}

// KeyringCheck returns a SignatureCheck that accepts an InRelease file
// only when it is clear-signed and one of its signatures verifies against
// keys. Debian signs each InRelease with several keys; one known key is
// enough, as it is for apt.
func KeyringCheck(keys openpgp.EntityList) SignatureCheck {
	return func(suite string, inRelease []byte) error {
		block, _ := clearsign.Decode(inRelease)
		if block == nil {
			return fmt.Errorf("%s: InRelease is not a clear-signed message: %w", suite, ErrBadSignature)
		}
		if _, err := block.VerifySignature(keys, nil); err != nil {
			return fmt.Errorf("%s: %w (%v)", suite, ErrBadSignature, err)
		}
		return nil
	}
}
