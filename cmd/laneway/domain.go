package main

import (
	"github.com/laneway/laneway"
	"github.com/laneway/laneway/examples/customers"
)

func customersDomain() (*laneway.Domain, error) { return customers.New(customers.Options{}) }
