package eval

// mongoStages is every aggregation stage name of MongoDB 8.0 (server and Atlas).
// It backs the "valid stages" extra column only; the four layers never use it.
var mongoStages = map[string]bool{
	"$addFields": true, "$bucket": true, "$bucketAuto": true, "$changeStream": true,
	"$changeStreamSplitLargeEvent": true, "$collStats": true, "$count": true, "$currentOp": true,
	"$densify": true, "$documents": true, "$facet": true, "$fill": true, "$geoNear": true,
	"$graphLookup": true, "$group": true, "$indexStats": true, "$limit": true,
	"$listLocalSessions": true, "$listSampledQueries": true, "$listSearchIndexes": true,
	"$listSessions": true, "$lookup": true, "$match": true, "$merge": true, "$out": true,
	"$planCacheStats": true, "$project": true, "$querySettings": true, "$queryStats": true,
	"$rankFusion": true, "$redact": true, "$replaceRoot": true, "$replaceWith": true,
	"$sample": true, "$scoreFusion": true, "$search": true, "$searchMeta": true, "$set": true,
	"$setWindowFields": true, "$shardedDataDistribution": true, "$skip": true, "$sort": true,
	"$sortByCount": true, "$unionWith": true, "$unset": true, "$unwind": true,
	"$vectorSearch": true,
}

// IsMongoStage reports whether name (with its '$') is a MongoDB aggregation stage.
func IsMongoStage(name string) bool { return mongoStages[name] }

// validStages reports whether a query that passed the syntax layer uses only real
// stage names: a find query has no stages and passes; an aggregate passes when the
// '$'-key of every pipeline stage is a MongoDB stage.
func validStages(q *Object) bool {
	pipe, ok := q.Get("pipeline")
	if t, _ := q.Get("type"); t != "aggregate" || !ok {
		return true
	}
	stages, _ := pipe.([]any)
	for _, s := range stages {
		obj, ok := s.(*Object)
		if !ok {
			return false
		}
		for _, k := range obj.Keys {
			if len(k) > 0 && k[0] == '$' && !mongoStages[k] {
				return false
			}
		}
	}
	return true
}
