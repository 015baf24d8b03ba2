package data

// The collection schemas of the synthetic generator: 18 training collections over 10
// domains and 3 held-out collections (the held-out names are those of the shared data set,
// so `t2m score` defaults fit both). Each field carries what the intent generators need:
// synonyms for renaming augmentation, sample values, a numeric range, an adjective.

// fieldSpec is a schema field plus generator hints.
type fieldSpec struct {
	Field
	Synonyms []string // alternative names used by renaming augmentation
	Values   []string // sample values (category, text words, identifiers); enums use EnumValues
	Lo, Hi   int      // plausible range of a measure, for thresholds
	Adj      string   // boolean fields: what a true value reads as ("flagged")
}

// schemaSpec is a collection the generator writes examples for.
type schemaSpec struct {
	Collection string
	Domain     string
	Noun       string // plural noun phrase used in intents ("patient visits")
	Fields     []fieldSpec
}

func fID(name, desc string, vals []string, syn ...string) fieldSpec {
	return fieldSpec{Field: Field{Name: name, Type: "string", Role: "identifier", Description: desc}, Values: vals, Synonyms: syn}
}

func fMeasure(name, typ, desc string, lo, hi int, syn ...string) fieldSpec {
	return fieldSpec{Field: Field{Name: name, Type: typ, Role: "measure", Description: desc}, Lo: lo, Hi: hi, Synonyms: syn}
}

func fDate(name, desc string, syn ...string) fieldSpec {
	return fieldSpec{Field: Field{Name: name, Type: "date", Role: "timestamp", Description: desc}, Synonyms: syn}
}

func fCat(name, desc string, vals []string, syn ...string) fieldSpec {
	return fieldSpec{Field: Field{Name: name, Type: "string", Role: "category", Description: desc}, Values: vals, Synonyms: syn}
}

func fEnum(name, desc string, vals []string, syn ...string) fieldSpec {
	return fieldSpec{Field: Field{Name: name, Type: "string", Role: "enum", Description: desc, EnumValues: vals}, Synonyms: syn}
}

func fText(name, desc string, words []string, syn ...string) fieldSpec {
	return fieldSpec{Field: Field{Name: name, Type: "string", Role: "text", Description: desc}, Values: words, Synonyms: syn}
}

func fBool(name, desc, adj string, syn ...string) fieldSpec {
	return fieldSpec{Field: Field{Name: name, Type: "bool", Role: "boolean", Description: desc}, Adj: adj, Synonyms: syn}
}

func l(s ...string) []string { return s }

var trainSchemas = []schemaSpec{
	{"orders", "ecommerce", "orders", []fieldSpec{
		fID("order_id", "Order identifier", l("ORD-1001", "ORD-2417", "ORD-5530"), "order_ref"),
		fID("customer_id", "Customer reference", l("CUST-042", "CUST-310"), "buyer_id"),
		fMeasure("total", "double", "Order total in USD", 5, 2000, "order_total", "amount"),
		fMeasure("item_count", "int", "Number of items", 1, 40, "quantity", "num_items"),
		fDate("created_at", "Order creation time", "order_date", "placed_at"),
		fEnum("status", "Order status", l("pending", "paid", "shipped", "delivered", "cancelled"), "order_status"),
		fCat("channel", "Sales channel", l("web", "mobile", "store", "marketplace"), "sales_channel"),
		fBool("is_gift", "Whether the order is a gift", "marked as a gift", "gift_order"),
	}},
	{"products", "ecommerce", "products", []fieldSpec{
		fID("sku", "Stock keeping unit", l("SKU-1180", "SKU-7702"), "product_code"),
		fText("name", "Product name", l("wireless", "organic", "steel", "kids"), "title", "product_name"),
		fMeasure("price", "double", "Unit price in USD", 1, 900, "unit_price", "list_price"),
		fMeasure("stock", "int", "Units in stock", 0, 5000, "inventory", "units_on_hand"),
		fMeasure("rating", "double", "Average review rating", 1, 5, "avg_rating"),
		fCat("category", "Product category", l("electronics", "garden", "toys", "books", "apparel"), "product_category"),
		fEnum("condition", "Item condition", l("new", "refurbished", "used"), "item_condition"),
		fBool("is_active", "Listed for sale", "active", "listed"),
		fDate("added_on", "Date the product was listed", "listed_at"),
	}},
	{"customers", "ecommerce", "customers", []fieldSpec{
		fID("customer_id", "Customer identifier", l("CUST-042", "CUST-777"), "client_id"),
		fText("email", "Contact email", l("gmail", "example", "corp"), "email_address"),
		fMeasure("lifetime_value", "double", "Total spend to date", 0, 25000, "ltv", "total_spend"),
		fMeasure("order_count", "int", "Orders placed", 0, 300, "num_orders"),
		fDate("signup_date", "Registration date", "registered_at", "joined_on"),
		fCat("country", "Country of residence", l("Germany", "Brazil", "Japan", "Canada", "Kenya"), "home_country"),
		fEnum("tier", "Loyalty tier", l("bronze", "silver", "gold", "platinum"), "loyalty_tier"),
		fBool("newsletter", "Subscribed to the newsletter", "subscribed", "is_subscribed"),
	}},
	{"transactions", "finance", "transactions", []fieldSpec{
		fID("txn_id", "Transaction identifier", l("TX-90412", "TX-11873"), "transaction_ref"),
		fID("account_id", "Account reference", l("ACC-2201", "ACC-9034"), "acct_id"),
		fMeasure("amount", "double", "Transaction amount", 1, 10000, "txn_amount", "value"),
		fDate("txn_date", "Transaction date", "booked_at", "posted_on"),
		fEnum("kind", "Transaction kind", l("debit", "credit", "transfer", "fee"), "txn_type"),
		fCat("merchant", "Merchant name", l("Acme Grocers", "CityFuel", "BookNook", "SkyAir"), "payee"),
		fBool("is_flagged", "Flagged for review", "flagged", "flagged"),
	}},
	{"accounts", "finance", "accounts", []fieldSpec{
		fID("account_id", "Account identifier", l("ACC-2201", "ACC-5150"), "acct_no"),
		fID("owner_id", "Owner reference", l("USR-18", "USR-402"), "holder_id"),
		fMeasure("balance", "double", "Current balance", -500, 90000, "current_balance"),
		fMeasure("credit_limit", "int", "Credit limit", 500, 50000, "limit_amount"),
		fDate("opened_at", "Account opening date", "open_date"),
		fEnum("account_type", "Type of account", l("checking", "savings", "brokerage", "loan"), "product_type"),
		fCat("branch", "Home branch", l("Downtown", "Harbor", "Airport", "Northside"), "branch_name"),
		fBool("is_frozen", "Account frozen", "frozen", "frozen"),
	}},
	{"employees", "hr", "employees", []fieldSpec{
		fID("employee_id", "Employee identifier", l("EMP-0042", "EMP-1337"), "staff_id"),
		fText("full_name", "Employee name", l("Ana", "Lee", "Singh"), "employee_name"),
		fMeasure("salary", "int", "Annual salary", 30000, 250000, "annual_pay", "base_salary"),
		fMeasure("years_of_service", "int", "Years at the company", 0, 40, "tenure_years"),
		fDate("hire_date", "Date of hire", "hired_on", "start_date"),
		fCat("department", "Department", l("engineering", "sales", "finance", "support", "legal"), "dept"),
		fEnum("level", "Job level", l("junior", "mid", "senior", "lead", "principal"), "grade"),
		fBool("is_remote", "Works remotely", "remote", "remote"),
	}},
	{"performance_reviews", "hr", "performance reviews", []fieldSpec{
		fID("review_id", "Review identifier", l("REV-301", "REV-922"), "appraisal_id"),
		fID("employee_id", "Reviewed employee", l("EMP-0042", "EMP-0100"), "reviewee_id"),
		fMeasure("score", "int", "Overall score (1-10)", 1, 10, "rating", "overall_score"),
		fMeasure("goals_met", "int", "Goals met in the period", 0, 12, "targets_met"),
		fDate("review_date", "Date of the review", "reviewed_on"),
		fEnum("cycle", "Review cycle", l("H1", "H2", "annual", "probation"), "review_cycle"),
		fText("comments", "Reviewer comments", l("leadership", "deadline", "mentoring"), "feedback"),
		fBool("promotion_recommended", "Recommended for promotion", "recommended for promotion", "promote"),
	}},
	{"patient_visits", "healthcare", "patient visits", []fieldSpec{
		fID("visit_id", "Visit identifier", l("V-10023", "V-55810"), "encounter_id"),
		fID("patient_id", "Patient reference", l("P-0091", "P-4410"), "mrn"),
		fMeasure("duration_min", "int", "Visit length in minutes", 5, 240, "visit_minutes"),
		fMeasure("cost", "double", "Billed cost", 20, 8000, "charge", "billed_amount"),
		fDate("visit_date", "Date of the visit", "seen_on", "admitted_at"),
		fCat("clinic", "Clinic", l("cardiology", "pediatrics", "orthopedics", "dermatology"), "department"),
		fEnum("visit_type", "Type of visit", l("routine", "follow_up", "urgent", "telehealth"), "encounter_type"),
		fBool("is_emergency", "Emergency visit", "emergency", "emergency"),
	}},
	{"lab_results", "healthcare", "lab results", []fieldSpec{
		fID("result_id", "Result identifier", l("LR-7781", "LR-1204"), "specimen_id"),
		fID("patient_id", "Patient reference", l("P-0091", "P-2333"), "subject_id"),
		fCat("test_name", "Name of the test", l("glucose", "hemoglobin", "cholesterol", "TSH"), "assay"),
		fMeasure("result_value", "double", "Measured value", 0, 400, "reading", "measured_value"),
		fDate("collected_at", "Sample collection time", "sampled_at"),
		fEnum("flag", "Result flag", l("normal", "low", "high", "critical"), "result_flag"),
		fBool("is_verified", "Verified by a technician", "verified", "verified"),
	}},
	{"sensor_readings", "iot", "sensor readings", []fieldSpec{
		fID("sensor_id", "Sensor identifier", l("S-017", "S-202"), "probe_id"),
		fMeasure("reading", "double", "Measured value", -40, 120, "measurement", "data_point"),
		fMeasure("battery_pct", "int", "Battery level in percent", 0, 100, "battery_level"),
		fDate("recorded_at", "Time of the reading", "measured_at", "ts"),
		fCat("location", "Installation site", l("plant_a", "plant_b", "rooftop", "cold_room"), "site"),
		fEnum("unit", "Measurement unit", l("celsius", "percent", "ppm", "pascal"), "uom"),
		fBool("is_anomaly", "Flagged as anomalous", "anomalous", "anomaly"),
	}},
	{"device_logs", "iot", "device log entries", []fieldSpec{
		fID("log_id", "Log entry identifier", l("LOG-88122", "LOG-10420"), "entry_id"),
		fID("device_id", "Device reference", l("DEV-31", "DEV-907"), "hardware_id"),
		fEnum("severity", "Log severity", l("debug", "info", "warning", "error", "critical"), "log_level"),
		fMeasure("response_time_ms", "int", "Response time in milliseconds", 1, 5000, "latency_ms"),
		fDate("logged_at", "Time of the entry", "event_time"),
		fText("message", "Log message", l("timeout", "reboot", "disk"), "log_text"),
		fCat("firmware", "Firmware version", l("v1.2", "v2.0", "v2.1"), "fw_version"),
		fBool("acknowledged", "Acknowledged by an operator", "acknowledged", "is_acked"),
	}},
	{"shipments", "logistics", "shipments", []fieldSpec{
		fID("shipment_id", "Shipment identifier", l("SHP-4410", "SHP-0093"), "tracking_no"),
		fCat("carrier", "Carrier", l("DHL", "UPS", "FedEx", "Maersk"), "shipper"),
		fMeasure("weight_kg", "double", "Weight in kilograms", 1, 3000, "mass_kg", "gross_weight"),
		fMeasure("transit_days", "int", "Days in transit", 1, 60, "days_in_transit"),
		fDate("shipped_at", "Dispatch date", "dispatch_date", "sent_on"),
		fEnum("state", "Shipment state", l("created", "in_transit", "delayed", "delivered", "lost"), "shipment_status"),
		fCat("destination", "Destination city", l("Rotterdam", "Singapore", "Chicago", "Lagos"), "dest_city"),
		fBool("is_insured", "Shipment insured", "insured", "insured"),
	}},
	{"warehouses", "logistics", "warehouses", []fieldSpec{
		fID("warehouse_id", "Warehouse identifier", l("WH-01", "WH-17"), "depot_code"),
		fCat("region", "Region", l("north", "south", "east", "west"), "zone"),
		fMeasure("capacity_m3", "int", "Capacity in cubic meters", 1000, 90000, "volume_capacity"),
		fMeasure("utilization", "double", "Utilization in percent", 0, 100, "fill_rate"),
		fDate("last_audit", "Last audit date", "audited_on"),
		fEnum("security_level", "Security level", l("basic", "enhanced", "high"), "security_tier"),
		fBool("is_refrigerated", "Has cold storage", "refrigerated", "cold_storage"),
	}},
	{"enrollments", "education", "enrollments", []fieldSpec{
		fID("enrollment_id", "Enrollment identifier", l("EN-5521", "EN-0308"), "registration_id"),
		fID("student_id", "Student reference", l("STU-118", "STU-940"), "learner_id"),
		fCat("course", "Course code", l("MATH101", "CS201", "HIST110", "BIO150"), "course_code"),
		fMeasure("grade_points", "double", "Grade points (0-4)", 0, 4, "gpa_points"),
		fMeasure("credits", "int", "Credit hours", 1, 6, "credit_hours"),
		fDate("enrolled_on", "Enrollment date", "registered_on"),
		fEnum("term", "Academic term", l("fall", "spring", "summer"), "semester"),
		fBool("is_audit", "Audit only (no grade)", "audit-only", "audit_only"),
	}},
	{"posts", "social", "posts", []fieldSpec{
		fID("post_id", "Post identifier", l("PST-1100", "PST-9082"), "post_ref"),
		fID("author_id", "Author reference", l("U-77", "U-1024"), "creator_id"),
		fMeasure("likes", "int", "Number of likes", 0, 50000, "like_count", "reactions"),
		fMeasure("shares", "int", "Number of shares", 0, 9000, "share_count"),
		fDate("published_at", "Publication time", "posted_at"),
		fCat("topic", "Post topic", l("sports", "music", "tech", "travel", "food"), "subject"),
		fText("content", "Post body", l("launch", "concert", "recipe"), "body"),
		fBool("is_pinned", "Pinned to the profile", "pinned", "pinned"),
	}},
	{"user_activity", "social", "user activity events", []fieldSpec{
		fID("event_id", "Event identifier", l("EVT-300", "EVT-7781"), "activity_id"),
		fID("user_id", "User reference", l("U-77", "U-5050"), "member_id"),
		fEnum("action", "Action taken", l("login", "logout", "view", "click", "purchase"), "event_type"),
		fMeasure("session_seconds", "int", "Session length in seconds", 1, 7200, "elapsed_seconds"),
		fDate("occurred_at", "Event time", "event_ts"),
		fCat("platform", "Client platform", l("ios", "android", "web", "desktop"), "client"),
		fBool("is_bot", "Suspected bot traffic", "bot", "bot_flag"),
	}},
	{"hotel_bookings", "hospitality", "hotel bookings", []fieldSpec{
		fID("booking_id", "Booking identifier", l("BK-2290", "BK-8113"), "reservation_id"),
		fID("guest_id", "Guest reference", l("G-501", "G-007"), "traveler_id"),
		fMeasure("nights", "int", "Number of nights", 1, 30, "stay_length"),
		fMeasure("room_rate", "double", "Nightly rate", 40, 1200, "nightly_rate"),
		fDate("check_in", "Check-in date", "arrival_date"),
		fCat("hotel", "Hotel name", l("Seaview", "Grand Central", "Alpine Lodge"), "property"),
		fEnum("room_type", "Room type", l("single", "double", "suite", "family"), "room_category"),
		fBool("is_refundable", "Refundable rate", "refundable", "refundable"),
	}},
	{"streaming_sessions", "media", "streaming sessions", []fieldSpec{
		fID("session_id", "Session identifier", l("SES-1919", "SES-4002"), "stream_id"),
		fID("viewer_id", "Viewer reference", l("VW-88", "VW-3120"), "subscriber_id"),
		fText("title", "Title watched", l("ocean", "detective", "galaxy"), "show_title"),
		fMeasure("watch_minutes", "int", "Minutes watched", 1, 600, "minutes_watched"),
		fMeasure("bitrate_kbps", "int", "Average bitrate", 300, 25000, "avg_bitrate"),
		fDate("started_at", "Session start", "start_time"),
		fEnum("device", "Playback device", l("tv", "phone", "tablet", "laptop", "console"), "device_type"),
		fCat("genre", "Genre", l("drama", "comedy", "documentary", "animation"), "category"),
		fBool("is_offline", "Downloaded for offline viewing", "offline", "offline"),
	}},
}

var heldOutSchemas = []schemaSpec{
	{"museum_exhibits", "culture", "museum exhibits", []fieldSpec{
		fID("exhibit_id", "Exhibit identifier", l("EX-0042", "EX-1870"), "catalog_no"),
		fText("exhibit_title", "Exhibit title", l("portrait", "bronze", "river"), "title"),
		fMeasure("visitor_count", "int", "Total visitors", 0, 400000, "footfall", "attendance"),
		fMeasure("ticket_price", "double", "Ticket price", 0, 40, "admission_fee"),
		fDate("opened_on", "Opening date", "opening_date"),
		fCat("wing", "Museum wing", l("east", "west", "modern", "antiquities"), "gallery"),
		fEnum("medium", "Art medium", l("painting", "sculpture", "photography", "installation"), "art_medium"),
		fBool("is_permanent", "Permanent exhibit", "permanent", "permanent"),
	}},
	{"weather_stations", "meteorology", "weather station reports", []fieldSpec{
		fID("station_id", "Station identifier", l("WS-114", "WS-870"), "station_code"),
		fMeasure("temperature_c", "double", "Air temperature in Celsius", -30, 45, "temp_c", "air_temp"),
		fMeasure("humidity_pct", "int", "Relative humidity", 0, 100, "rel_humidity"),
		fMeasure("rainfall_mm", "double", "Rainfall in millimeters", 0, 300, "precipitation_mm"),
		fDate("observed_at", "Observation time", "reading_time"),
		fCat("region", "Region", l("coastal", "alpine", "desert", "plains"), "area"),
		fEnum("condition", "Sky condition", l("clear", "cloudy", "rain", "snow", "fog"), "sky"),
		fBool("is_automated", "Automated station", "automated", "automatic"),
	}},
	{"fleet_vehicles", "transportation", "fleet vehicles", []fieldSpec{
		fID("vehicle_id", "Vehicle identifier", l("VH-301", "VH-1288"), "unit_no"),
		fID("plate", "License plate", l("KA-4411", "B-XY-900"), "license_plate"),
		fMeasure("mileage_km", "int", "Odometer reading in km", 0, 600000, "odometer_km"),
		fMeasure("fuel_cost", "double", "Fuel cost this month", 0, 5000, "fuel_expense"),
		fDate("last_service", "Last service date", "serviced_on"),
		fCat("depot", "Home depot", l("north_yard", "south_yard", "central"), "base"),
		fEnum("vehicle_type", "Vehicle type", l("van", "truck", "car", "bus"), "kind"),
		fBool("is_electric", "Electric vehicle", "electric", "ev"),
	}},
}
