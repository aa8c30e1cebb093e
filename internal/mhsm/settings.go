package mhsm

import (
	"context"
	"encoding/json"
	"errors"
	"strings"

	"github.com/keyward/keyward/internal/errs"
	"github.com/keyward/keyward/internal/storage"
)

func jsonUnmarshal(raw []byte, v any) error { return json.Unmarshal(raw, v) }

// Setting is a pool setting (azadmin/settings).
type Setting struct {
	Name  string `json:"name"`
	Value string `json:"value"`
	Type  string `json:"type"`
}

// settingDefaults are the settings Azure documents, with their defaults.
var settingDefaults = []Setting{
	{Name: "AllowKeyManagementOperationsThroughARM", Value: "false", Type: "boolean"},
}

func setKey(name string) string { return "mhsm/set/" + strings.ToLower(name) }

// Settings lists every setting with its current value.
func (s *Service) Settings(ctx context.Context, p *Pool) ([]Setting, error) {
	out := make([]Setting, 0, len(settingDefaults))
	for _, d := range settingDefaults {
		v, err := s.Setting(ctx, p, d.Name)
		if err != nil {
			return nil, err
		}
		out = append(out, *v)
	}
	return out, nil
}

// Setting returns one setting.
func (s *Service) Setting(ctx context.Context, p *Pool, name string) (*Setting, error) {
	for _, d := range settingDefaults {
		if !strings.EqualFold(d.Name, name) {
			continue
		}
		var cur Setting
		err := s.getJSON(ctx, p, setKey(d.Name), &cur)
		switch {
		case errors.Is(err, storage.ErrNotFound):
			return &d, nil
		case err != nil:
			return nil, err
		}
		return &cur, nil
	}
	return nil, fail(errs.NotFound, "SettingNotFound", "The setting %s does not exist.", clip(name))
}

// SetSetting changes a setting; a boolean takes "true" or "false".
func (s *Service) SetSetting(ctx context.Context, p *Pool, name, value string) (*Setting, error) {
	cur, err := s.Setting(ctx, p, name)
	if err != nil {
		return nil, err
	}
	v := strings.ToLower(value)
	if cur.Type == "boolean" && v != "true" && v != "false" {
		return nil, fail(errs.BadParameter, "BadParameter", "The setting %s takes true or false.", cur.Name)
	}
	cur.Value = v
	if err := s.putJSON(ctx, p, setKey(cur.Name), cur); err != nil {
		return nil, err
	}
	return cur, nil
}
