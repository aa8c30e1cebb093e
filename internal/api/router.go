package api

import (
	"github.com/keyward/keyward/internal/authz"
	"github.com/keyward/keyward/internal/route"
)

// handler serves one data-plane operation.
type handler = func(*request) error

// kwroute is one data-plane operation: its routes line in routes.go.
type kwroute = route.Route[handler, authz.Action]
