package pgtext

// Day counts: days since 2000-01-01, PostgreSQL's epoch, in the proleptic
// Gregorian calendar with astronomical year numbering (year 0 is 1 BC, -1 is
// 2 BC). Dates and timestamps are counted from there, as PostgreSQL stores
// them: its whole timestamp range fits an int64 of microseconds only so.

// The Unix epoch, 1970-01-01, in days and microseconds from PostgreSQL's.
const (
	UnixEpochDays   = -10957
	UnixEpochMicros = UnixEpochDays * usPerDay
)

// Day ranges of PostgreSQL's types: from 4714-11-24 BC (Julian day 0) to
// before 5874898-01-01 for date and 294277-01-01 for timestamps.
const (
	minDay          = -2451545
	dateEndDay      = 2147483494 + minDay
	timestampEndDay = 109203528 + minDay
)

// DaysFromCivil counts days from 2000-01-01 to a date (H. Hinnant's
// algorithm); m is 1 to 12 and d 1 to the month's length.
func DaysFromCivil(y, m, d int64) int64 {
	if m <= 2 {
		y--
	}
	era := y / 400
	if y < 0 && y%400 != 0 {
		era--
	}
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return era*146097 + doe - 719468 + UnixEpochDays
}

// CivilFromDays is the date days after 2000-01-01, the inverse of
// DaysFromCivil.
func CivilFromDays(days int64) (y, m, d int64) {
	z := days - UnixEpochDays + 719468
	era := z / 146097
	if z < 0 && z%146097 != 0 {
		era--
	}
	doe := z - era*146097
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	d = doy - (153*mp+2)/5 + 1
	m = mp + 3
	if m > 12 {
		m -= 12
	}
	y = yoe + era*400
	if m <= 2 {
		y++
	}
	return y, m, d
}

// daysIn is the length of month m of year y.
func daysIn(y, m int64) int64 {
	switch m {
	case 2:
		if y%4 == 0 && (y%100 != 0 || y%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}
