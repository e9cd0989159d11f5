// Package laneway is a framework and engine for event-driven domain services
// built around priority lanes: production events and bulk work (migrations,
// backfills, imports) travel through separate Redis Streams, and the engine
// always serves production first.
//
// A tour:
//
//	b := laneway.NewDomain("Customers")
//	laneway.RegisterAggregate[Customer](b, laneway.AggregateOptions{})  // category "customer"
//	laneway.RegisterEvent[Customer, CustomerUpdated](b)
//	laneway.RegisterCommand[Customer, UpdateCustomer](b, handleUpdate)
//	p := laneway.NewHandler("CustomerProjector")
//	laneway.On(p, projectUpdated)
//	b.AddHandler(p)
//	dom, err := b.Build() // every registration problem reported here
//
//	app, err := laneway.Open(ctx, dom, cfg, laneway.Options{})
//	err = app.Process(laneway.WithPriority(ctx, laneway.Low), UpdateCustomer{...})  // backfill lane
//	err = app.Process(ctx, ReindexProduct{...}, laneway.AtPriority(laneway.Bulk))   // explicit beats ctx
//
//	eng := laneway.NewEngine(app, laneway.EngineOptions{})
//	err = eng.Start(ctx) // relay + one lane-scheduling consumer per handler × category
//	defer eng.Stop(ctx)  // graceful: finishes in-flight handlers, leaves the rest pending
//
// Process runs the command handler in one unit of work: aggregate state and
// one outbox row per raised event commit in one transaction, every row
// stamped with the resolved priority (explicit option, then context, then
// Normal). The engine's relay publishes rows by priority, routing rows below
// the lane threshold to "<category>:backfill"; consumers block on both lanes
// at once and always handle primary first.
package laneway
