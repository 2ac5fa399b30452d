package report

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/fusematrix/fusematrix/results"
)

// WriteJSON writes run as indented JSON. encoding/json sorts map keys, so
// the same run always gives the same bytes and files diff cleanly.
func WriteJSON(w io.Writer, run *results.Run) error {
	if run == nil {
		return errors.New("write json: no run")
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	// Reasons often quote shell redirections and paths with < and >;
	// escaping them for HTML would only make the file harder to read.
	enc.SetEscapeHTML(false)
	if err := enc.Encode(run); err != nil {
		return fmt.Errorf("write json: %w", err)
	}
	return nil
}
