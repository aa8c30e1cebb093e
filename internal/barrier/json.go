package barrier

import (
	"encoding/json"
	"errors"

	"github.com/keyward/keyward/internal/storage"
)

// GetJSON reads the record at key into v; false when there is none. The
// plaintext bytes are cleared once decoded.
func GetJSON(tx Tx, key string, v any) (bool, error) {
	raw, err := tx.Get(key)
	if errors.Is(err, storage.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer clear(raw)
	return true, json.Unmarshal(raw, v)
}

// PutJSON writes v as the record at key, clearing its plaintext encoding
// once handed to the transaction.
func PutJSON(tx Tx, key string, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	defer clear(raw)
	return tx.Put(key, raw)
}
